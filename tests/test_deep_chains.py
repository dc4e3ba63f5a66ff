"""Issue 11, item 14: cycles of any length are named, deep chains work or say how deep they got.

Before, a cycle through 12 or more objects, ~330 ref hops, 500 chained
OutputHandlers and 200 engines chained by `run_on` all crashed with a bare
RecursionError: the cycle check counted re-entries per object, and Python's
recursion limit was reached first.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator

import pytest

from statefire.features import Engine, OutputHandler
from statefire.frame import CycleError, DepthError, FrameError, Params, State


@pytest.fixture
def deep_limit() -> Iterator[None]:
    """A recursion limit high enough for the chains below (restored after the test)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _chain_of_params(n: int) -> list[Params]:
    return [Params(name=f"p{i}", v=0) for i in range(n)]


@pytest.mark.parametrize("n", [12, 50, 200])
def test_a_cycle_of_any_length_is_a_cycle_error_naming_it(n):
    """A ring of n objects, each setting the next, raises CycleError whose cycle lists all n, closed."""
    with State():
        ring = _chain_of_params(n)
        for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
            a.v_ref.attach(lambda v, b=b: setattr(b, "v", v + 1))
        with pytest.raises(CycleError) as caught:
            ring[0].v = 1
    cycle = caught.value.cycle
    assert len(cycle) == n + 1 and cycle[0] == cycle[-1]
    assert set(cycle) == {f"params.p{i}.v" for i in range(n)}
    start = int(cycle[0].split(".")[1][1:])
    assert cycle == [f"params.p{(start + i) % n}.v" for i in range(n + 1)]  # in firing order
    assert f"cycle of {n} objects" in str(caught.value)


def test_a_long_cycle_beyond_the_recursion_limit_is_named_with_a_higher_limit(deep_limit):
    """600 objects in a ring: with a limit that lets the chain come round, it is a CycleError too."""
    with State():
        ring = _chain_of_params(600)
        for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
            a.v_ref.attach(lambda v, b=b: setattr(b, "v", v + 1))
        with pytest.raises(CycleError) as caught:
            ring[0].v = 1
    assert len(caught.value.cycle) == 601


def _ref_hops(n: int) -> list[Params]:
    chain = _chain_of_params(n)
    for a, b in itertools.pairwise(chain):
        a.v_ref.attach(b.v_ref.set)
    return chain


def test_a_chain_too_deep_for_the_recursion_limit_says_how_deep_and_why():
    """330 ref hops at the default limit: a DepthError (a FrameError) naming the chain and its depth."""
    with State():
        chain = _ref_hops(330)
        with pytest.raises(DepthError) as caught:
            chain[0].v = 1
    error = caught.value
    assert isinstance(error, FrameError) and isinstance(error, RecursionError)
    assert error.chain[0] == "params.p0.v" and error.depth == len(error.chain) > 100
    assert error.chain == [f"params.p{i}.v" for i in range(error.depth)]
    text = str(error)
    assert f"a chain of {error.depth} nested sets reached Python's recursion limit" in text
    assert "sys.setrecursionlimit" in text and "params.p0.v -> params.p1.v" in text


def test_330_ref_hops_work_with_a_higher_limit(deep_limit):
    """The same chain runs to its end once the recursion limit allows it."""
    with State():
        chain = _ref_hops(330)
        chain[0].v = 7
        assert chain[-1].v == 7


def test_500_chained_output_handlers(deep_limit):
    """500 OutputHandlers, each transforming the previous one's output, all run."""
    with State():
        engine = Engine("engine", lambda e, b: b, data=[1, 2])
        previous = engine.output_ref
        for i in range(500):
            handler = OutputHandler(previous, lambda x: x + 1, name=f"h{i}")
            previous = handler.output_ref
        engine.run()
        assert handler.output == 502


def test_500_chained_output_handlers_at_the_default_limit_raise_a_depth_error():
    """At the default limit the same chain is a DepthError starting at the engine's output."""
    with State():
        engine = Engine("engine", lambda e, b: b, data=[1, 2])
        previous = engine.output_ref
        for i in range(500):
            previous = OutputHandler(previous, lambda x: x, name=f"h{i}").output_ref
        with pytest.raises(DepthError) as caught:
            engine.run()
    assert caught.value.chain[:2] == ["engines.engine.output", "output_handlers.h0.output"]


def test_200_engines_chained_by_run_on(deep_limit):
    """Each engine runs on the previous one's epoch end: all 200 run."""
    with State():
        first = engine = Engine("e0", lambda e, b: b, data=[1])
        for i in range(1, 200):
            engine = Engine(f"e{i}", lambda e, b: b, data=[1], run_on=engine.n_epoch_completed_ref)
        first.run()
        assert engine.n_epoch_completed == 1


def test_200_engines_at_the_default_limit_raise_a_depth_error():
    """Without a higher limit, a FrameError naming the chain of engines, never a bare RecursionError."""
    with State():
        first = engine = Engine("e0", lambda e, b: b, data=[1])
        for i in range(1, 200):
            engine = Engine(f"e{i}", lambda e, b: b, data=[1], run_on=engine.n_epoch_completed_ref)
        with pytest.raises(DepthError) as caught:
            first.run()
    assert caught.value.chain[0] == "engines.e0.n_epoch_completed"
    assert "engines.e1.n_epoch_completed" in caught.value.chain
