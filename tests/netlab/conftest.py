"""The ``netlab`` fixture: build network-namespace labs, always torn down.

Skips (with the reason printed by ``-ra``) when not root, when ip/nft/tc are missing,
or when namespaces cannot be created here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from lab import LabUnavailable, NetLab, unavailable_reason


@pytest.fixture
def netlab() -> Iterator[Callable[..., NetLab]]:
    """``netlab(hosts=2, subnet=0, mtu=1500) -> NetLab``, already up."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    labs: list[NetLab] = []

    def make(hosts: int = 2, **options: int) -> NetLab:
        lab = NetLab(hosts, **options)
        labs.append(lab)
        try:
            lab.up()
        except LabUnavailable as exc:
            pytest.skip(str(exc))
        return lab

    try:
        yield make
    finally:
        for lab in labs:
            lab.down()
