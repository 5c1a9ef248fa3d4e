"""What a host would be patched to, how mature that is, and whether its cluster can take its load.

These feed the patch-risk side of a decision. The candidate for an ESXi host is the oldest
non-withdrawn release of its update line that is at least every fixed build its findings name
(the newest release of the line when none names one); for other platforms it is the highest
fixed-in version the findings name, whose release date hvpatch does not know.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from hvpatch.domain.fleet import Cluster, Host
from hvpatch.domain.lifecycle import bad_patch_history, line_for, product_line, pulled_kbs
from hvpatch.domain.risk import Candidate, Maturity
from hvpatch.domain.software import EsxiSoftware, HyperVSoftware
from hvpatch.domain.versions import EsxiBuild, esxi_releases

_BUILD = re.compile(r"(\d{6,9})\s*$")


def _esxi_candidate(sw: EsxiSoftware, fixed: list[str]) -> Candidate:
    build = EsxiBuild.parse(sw.build)
    release = build.release
    if release is None:
        return Candidate(f"newer build than {build.build}")
    line = ".".join(release.version.split(".")[:2])
    need = max([int(m.group(1)) for f in fixed if (m := _BUILD.search(f))] + [build.build + 1])
    ok = [r for r in esxi_releases(line) if r.build >= need and not r.withdrawn]
    if not ok:
        newest = max(esxi_releases(line), key=lambda r: r.build)
        if newest.withdrawn:
            return Candidate(f"{newest.name} ({newest.build})", newest.release_date, True,
                             "withdrawn by VMware")
        return Candidate(f"a build of {line} >= {need} (not in the build table)")
    target = min(ok, key=lambda r: r.build)
    return Candidate(f"{target.name} ({target.build})", target.release_date)


def candidate_for(host: Host, fixed_ins: Iterable[str | None]) -> Candidate:
    """The candidate fix for ``host`` given the fixed-in values of its open findings."""
    fixed = sorted({f for f in fixed_ins if f})
    sw = host.software
    if isinstance(sw, EsxiSoftware):
        return _esxi_candidate(sw, fixed)
    if isinstance(sw, HyperVSoftware):
        pulled = sorted(set(k.upper() for k in sw.kbs) & pulled_kbs())
        label = f"cumulative update >= {max(fixed)}" if fixed else "latest cumulative update"
        return Candidate(label, None, False,
                         f"installed {', '.join(pulled)} was pulled by Microsoft" if pulled else "")
    if not fixed:
        return Candidate("latest vendor release")
    return Candidate("fixed versions: " + ", ".join(fixed[-3:]))


def maturity_for(host: Host, today: date) -> Maturity | None:
    """The product line's maturity for ``host`` from the bundled lifecycle data."""
    key = line_for(host.software)
    if key is None:
        return None
    line = product_line(*key)
    bad = len(bad_patch_history(key[0]))
    if line is None:
        return Maturity(key[0], key[1], None, "unknown", bad)
    return Maturity(key[0], key[1], line.age_years(today), line.status(today).value, bad)


def can_evacuate(host: Host, cluster: Cluster | None) -> bool:
    """Whether the other hosts of the cluster have the memory to take this host's guests."""
    if cluster is None:
        return False
    need = host.memory_demand_mb
    free = sum(int(h.memory_mb * cluster.memory_overcommit) - h.memory_demand_mb
               for h in cluster.hosts if h.name != host.name)
    return free >= need
