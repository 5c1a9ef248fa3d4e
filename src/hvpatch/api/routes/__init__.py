"""The routers of the API, one module per area (all mounted under ``/api/v1``)."""
