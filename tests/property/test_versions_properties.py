"""Hypothesis properties of every version scheme.

For each scheme, generated valid versions must obey the laws of a total order (antisymmetry,
transitivity, totality; ``==`` agrees with ``hash``), round-trip through ``str``, keep
``coarse_key`` monotone, and sort to the same sequence whatever the input order. Debian and RPM
orders are also checked against univers' reference comparisons (dpkg's and rpm's algorithms).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from univers import debian as univers_debian
from univers import rpm as univers_rpm

from hvpatch.domain.versions import (
    DebianVersion,
    DottedVersion,
    EsxiBuild,
    RpmVersion,
    Version,
    WindowsBuild,
    esxi_releases,
    parse_version,
)

#: Applied per test (not as a global profile, which would change other modules' properties).
SETTINGS = settings(max_examples=250, deadline=None)

# --- strategies: each draws a valid version string of one scheme ----------------------------


def _joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


_small_number = st.integers(0, 30).map(str) | st.sampled_from(["0", "00", "007", "10", "2024"])

# Versions are drawn as a shared base plus a short tail, so that generated pairs often share a
# prefix and differ only where ordering rules are subtle ("1.0" vs "1.0~" vs "1.0a" vs "1.00").
_deb_upstream = st.one_of(
    _joined(
        st.sampled_from(["0", "1", "1.0", "01.0", "1.00", "6.2.0", "4.17.3+10"]),
        st.text("0123.+~aZ", max_size=3),
    ),
    _joined(_small_number, st.text("0123456789.+~abAZ", max_size=8)),
)
_deb_revision = st.one_of(
    st.just(""),
    _joined(
        st.just("-"),
        st.sampled_from(["0", "1", "1~deb12u1", "0ubuntu1", "a"]),
        st.text("01.+~a", max_size=2),
    ),
    _joined(st.just("-"), st.text("0123456789.+~abuz", min_size=1, max_size=8)),
)
deb_texts = _joined(
    st.sampled_from(["", "", "0:", "1:", "2:", "10:"]), _deb_upstream, _deb_revision
)
# An upstream may contain '-' only when a revision follows.
deb_texts = deb_texts | _joined(
    st.sampled_from(["", "1:"]),
    _deb_upstream,
    st.just("-g0914"),
    st.text("0123.+~a-", max_size=3),
    st.just("-1"),
    st.text("0.~b", max_size=2),
)


def _has_alnum(text: str) -> bool:
    return any(c.isalnum() for c in text)


_rpm_part = st.one_of(
    _joined(
        st.sampled_from(["1", "1.0", "1.0.1", "01", "6.2.0", "11.el9_4", "a"]),
        st.text("01.~^_a", max_size=3),
    ),
    st.text("0123456789.~^_+abzAZ", max_size=10),
).filter(_has_alnum)
rpm_texts = _joined(
    st.sampled_from(["", "", "0:", "1:", "17:"]),
    _rpm_part,
    st.one_of(st.just(""), _rpm_part.map(lambda release: "-" + release)),
)

windows_texts = _joined(
    st.sampled_from(["6.2", "6.3", "10.0", "10.1"]),
    st.sampled_from([".9200", ".9600", ".14393", ".17763", ".20348", ".26100"])
    | st.integers(0, 70000).map(lambda n: f".{n}"),
    st.none().map(lambda _: "") | st.integers(0, 99999).map(lambda n: f".{n}"),
)

_suffix_word = st.sampled_from(
    ["rc", "RC", "alpha", "beta", "dev", "pre", "amd64", "generic", "pve", "el9", "x"]
)
_suffix_part = _small_number | _suffix_word | _joined(_suffix_word, _small_number)
dotted_texts = _joined(
    st.sampled_from(["", "", "", "v"]),
    st.lists(_small_number, min_size=1, max_size=5).map(".".join),
    st.lists(_suffix_part, max_size=3).flatmap(
        lambda parts: (
            st.just("")
            if not parts
            else st.lists(
                st.sampled_from("-._+~"), min_size=len(parts) - 1, max_size=len(parts) - 1
            ).map(
                lambda seps: "-" + "".join(p + s for p, s in zip(parts, [*seps, ""], strict=False))
            )
        )
    ),
)

_table_builds = [r.build for r in esxi_releases()]
_table_names = [r.name for r in esxi_releases()]
esxi_texts = (
    st.integers(1, 99_999_999).map(str)
    | st.sampled_from(_table_builds).map(str)
    | st.sampled_from(_table_builds).map(lambda b: str(EsxiBuild(b)))
    | st.sampled_from(_table_names)
)

TEXTS: dict[str, st.SearchStrategy[str]] = {
    "deb": deb_texts,
    "rpm": rpm_texts,
    "windows": windows_texts,
    "dotted": dotted_texts,
    "esxi": esxi_texts,
}


def versions_of(scheme: str) -> st.SearchStrategy[Version]:
    return TEXTS[scheme].map(lambda text: parse_version(scheme, text))


SCHEME_NAMES = sorted(TEXTS)


def _for_each_scheme(
    draw_count: int,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Parametrize a property over schemes, drawing ``draw_count`` versions of that scheme."""

    def decorate(check: Callable[..., None]) -> Callable[..., None]:
        @pytest.mark.parametrize("scheme", SCHEME_NAMES)
        @SETTINGS
        @given(data=st.data())
        def run(scheme: str, data: st.DataObject) -> None:
            drawn = [data.draw(versions_of(scheme), label=f"v{i}") for i in range(draw_count)]
            check(*drawn)

        run.__name__ = check.__name__
        run.__doc__ = check.__doc__
        decorated: Callable[..., None] = run
        return decorated

    return decorate


# --- laws -----------------------------------------------------------------------------------


@_for_each_scheme(1)
def test_parse_of_str_round_trips(v: Version) -> None:
    """parse(str(v)) == v, and str is stable under that round trip."""
    again = parse_version(v.scheme, str(v))
    assert again == v
    assert hash(again) == hash(v)
    assert str(again) == str(v)


@_for_each_scheme(2)
def test_exactly_one_of_less_equal_greater(a: Version, b: Version) -> None:
    """Totality and consistency of the six operators."""
    outcomes = [a < b, a == b, a > b]
    assert outcomes.count(True) == 1
    assert (a <= b) == (a < b or a == b)
    assert (a >= b) == (a > b or a == b)
    assert (a != b) == (not a == b)  # noqa: SIM201
    assert (a < b) == (b > a)


@_for_each_scheme(2)
def test_antisymmetry_and_hash_consistency(a: Version, b: Version) -> None:
    """a <= b and b <= a imply a == b; equal versions hash alike."""
    if a <= b and b <= a:
        assert a == b
    if a == b:
        assert hash(a) == hash(b)


@_for_each_scheme(3)
def test_transitivity(a: Version, b: Version, c: Version) -> None:
    """Sorting three versions yields a chain that holds end to end."""
    low, mid, high = sorted([a, b, c])
    assert low <= mid <= high
    assert low <= high
    if low < mid or mid < high:
        assert low < high


@_for_each_scheme(2)
def test_coarse_key_is_monotone(a: Version, b: Version) -> None:
    """a <= b implies coarse_key(a) <= coarse_key(b); keys fit a signed 64-bit column."""
    low, high = sorted([a, b])
    assert low.coarse_key() <= high.coarse_key()
    assert 0 <= low.coarse_key() < 2**63
    assert 0 <= high.coarse_key() < 2**63


@pytest.mark.parametrize("scheme", SCHEME_NAMES)
@SETTINGS
@given(data=st.data())
def test_sorting_does_not_depend_on_input_order(scheme: str, data: st.DataObject) -> None:
    versions = data.draw(st.lists(versions_of(scheme), max_size=12))
    shuffled = data.draw(st.permutations(versions))
    ordered = sorted(versions)
    assert sorted(shuffled) == ordered
    assert all(x <= y for x, y in itertools.pairwise(ordered))


# --- reference implementations --------------------------------------------------------------


# univers is untyped; give its reference comparisons a signature.
_dpkg_compare: Callable[[str, str], int] = univers_debian.compare_versions
_rpmvercmp_compare: Callable[[str, str], int] = univers_rpm.compare_rpm_versions


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def _ours(a: Version, b: Version) -> int:
    return -1 if a < b else (1 if a > b else 0)


@SETTINGS
@given(a=deb_texts, b=deb_texts)
@example(a="0", b="0~")
@example(a="1.0", b="1.0~")
@example(a="1.0", b="1.00")
@example(a="6.2.0~rc1", b="6.2.0")
@example(a="1.0-0", b="1.0")
@example(a="1.0~~", b="1.0~~a")
@example(a="1.0a", b="1.0+dfsg")
def test_debian_order_matches_dpkg_reference(a: str, b: str) -> None:
    """Same verdict as univers' port of dpkg's verrevcmp, and univers accepts what we accept."""
    expected = _dpkg_compare(a, b)
    assert _ours(DebianVersion.parse(a), DebianVersion.parse(b)) == _sign(expected)


@SETTINGS
@given(a=rpm_texts, b=rpm_texts)
@example(a="1.0", b="1.0~rc1")
@example(a="1.0", b="1.0^git1")
@example(a="1.0^git1", b="1.0.1")
@example(a="1.0a", b="1.0^a")
@example(a="1.0", b="1.0-1")
@example(a="1_0", b="1.00")
@example(a="a", b="1")
def test_rpm_order_matches_rpmvercmp_reference(a: str, b: str) -> None:
    """Same verdict as univers' port of rpm's rpmvercmp (epoch, version, release)."""
    expected = _rpmvercmp_compare(a, b)
    assert _ours(RpmVersion.parse(a), RpmVersion.parse(b)) == _sign(expected)


@SETTINGS
@given(a=windows_texts, b=windows_texts)
def test_windows_order_is_numeric_tuple_order(a: str, b: str) -> None:
    def as_tuple(text: str) -> tuple[int, ...]:
        parts = [int(p) for p in text.split(".")]
        return (*parts, -1) if len(parts) == 3 else tuple(parts)

    assert _ours(WindowsBuild.parse(a), WindowsBuild.parse(b)) == _sign(
        (as_tuple(a) > as_tuple(b)) - (as_tuple(a) < as_tuple(b))
    )


@SETTINGS
@given(a=esxi_texts, b=esxi_texts)
def test_esxi_order_is_build_number_order(a: str, b: str) -> None:
    x, y = EsxiBuild.parse(a), EsxiBuild.parse(b)
    assert _ours(x, y) == _sign(x.build - y.build)


@SETTINGS
@given(text=dotted_texts)
def test_dotted_prerelease_sorts_before_its_release(text: str) -> None:
    version = DottedVersion.parse(text)
    plain = DottedVersion.parse(".".join(str(n) for n in version.release))
    if version.is_prerelease:
        assert version < plain
    elif version.suffix:
        assert version > plain
    else:
        assert version == plain
