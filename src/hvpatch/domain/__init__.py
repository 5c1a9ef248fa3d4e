"""The pure domain: frozen values and total functions, no I/O, no clock."""
