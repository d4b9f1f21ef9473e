"""Validation happens before anything runs and names every problem."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamcore.batch import Pipeline, Retry
from streamcore.errors import PipelineValidationError, StreamcoreError


def module_level(x: int) -> int:
    return x


async def test_a_cycle_is_rejected_naming_it_and_nothing_runs() -> None:
    pipe = Pipeline("cyclic")
    ran: list[str] = []

    @pipe.task()
    def start() -> None:
        ran.append("start")

    @pipe.task(depends_on=["c"])
    def a(_: object) -> None:
        ran.append("a")

    @pipe.task(depends_on=[a])
    def b(_: object) -> None:
        ran.append("b")

    @pipe.task(depends_on=[b])
    def c(_: object) -> None:
        ran.append("c")

    with pytest.raises(PipelineValidationError) as info:
        await pipe.run()
    assert "tasks form a cycle: a -> b -> c -> a" in str(info.value)
    assert "nothing was started" in str(info.value)
    assert ran == []
    with pytest.raises(PipelineValidationError, match="a -> b -> c -> a"):
        pipe.plan()


def test_a_task_depending_on_itself_is_a_cycle() -> None:
    pipe = Pipeline("self")
    pipe.add_task(module_level, name="loop", depends_on=["loop"])
    with pytest.raises(PipelineValidationError, match="cycle: loop -> loop"):
        pipe.validate()


async def test_an_unknown_dependency_is_rejected_with_a_suggestion_and_nothing_runs() -> None:
    pipe = Pipeline("etl")
    ran: list[str] = []

    @pipe.task()
    def extract() -> None:
        ran.append("extract")

    @pipe.task(depends_on=["extrct"])
    def load(_: object) -> None:
        ran.append("load")

    with pytest.raises(PipelineValidationError) as info:
        await pipe.run()
    message = str(info.value)
    assert "task 'load' depends on 'extrct', which is not a task of pipeline 'etl'" in message
    assert "did you mean 'extract'?" in message
    assert ran == []
    assert isinstance(info.value, StreamcoreError)


def test_every_problem_is_listed_at_once() -> None:
    pipe = Pipeline("many")
    pipe.add_task(module_level, name="x", depends_on=["nope"])
    pipe.add_task(module_level, name="y", depends_on=["also_nope"])
    with pytest.raises(PipelineValidationError) as info:
        pipe.validate()
    assert "'nope'" in str(info.value) and "'also_nope'" in str(info.value)


def test_a_duplicate_name_is_rejected_when_declared() -> None:
    pipe = Pipeline("dup")
    pipe.add_task(module_level, name="step")
    with pytest.raises(PipelineValidationError, match="already has a task named 'step'"):
        pipe.add_task(module_level, name="step")


def test_depending_on_a_task_of_another_pipeline_or_an_undeclared_function_is_rejected() -> None:
    other = Pipeline("other")
    foreign = other.add_task(module_level, name="foreign")

    def stray() -> None: ...

    pipe = Pipeline("mine")
    pipe.add_task(module_level, name="a", depends_on=[foreign])
    pipe.add_task(module_level, name="b", depends_on=[stray])
    with pytest.raises(PipelineValidationError) as info:
        pipe.validate()
    assert "task 'a' depends on task 'foreign' of another pipeline" in str(info.value)
    assert "task 'b' depends on function 'stray', which is not a task of pipeline 'mine'" in str(info.value)


def test_an_unpicklable_function_on_the_process_executor_is_rejected() -> None:
    pipe = Pipeline("procs")
    pipe.add_task(lambda: 1, name="anonymous", executor="process")
    pipe.add_task(module_level, name="fine", executor="process", depends_on=["anonymous"])
    with pytest.raises(PipelineValidationError) as info:
        pipe.validate()
    message = str(info.value)
    assert "task 'anonymous' runs on the process executor but its function cannot be pickled" in message
    assert "'fine'" not in message


def test_asking_more_than_the_capacity_or_an_unknown_resource_is_rejected() -> None:
    pipe = Pipeline("greedy", resources={"cpu": 4, "memory_gb": 16})
    pipe.add_task(module_level, name="huge", resources={"cpu": 8})
    pipe.add_task(module_level, name="gpu", resources={"gpu": 1})
    with pytest.raises(PipelineValidationError) as info:
        pipe.validate()
    message = str(info.value)
    assert "task 'huge' asks for cpu=8, more than the pipeline's whole capacity cpu=4" in message
    assert "task 'gpu' asks for resource 'gpu', which the pipeline does not have" in message


def test_the_default_capacity_is_the_machine() -> None:
    import psutil

    pipe = Pipeline("machine")
    assert pipe.capacity["cpu"] == psutil.cpu_count()
    assert pipe.capacity["memory_gb"] == pytest.approx(psutil.virtual_memory().total / 2**30)


def test_settings_that_cannot_be_honoured_are_rejected() -> None:
    pipe = Pipeline("settings")

    def blocking() -> int:
        return 1

    def produce():
        yield 1

    def consume(items: object) -> None: ...

    pipe.add_task(blocking, name="inline_timeout", timeout=5)
    pipe.add_task(produce, name="produce")
    pipe.add_task(consume, name="inline_stream", depends_on=["produce"], streaming=True)
    pipe.add_task(module_level, name="process_stream", depends_on=["produce"], streaming=True, executor="process")
    with pytest.raises(PipelineValidationError) as info:
        pipe.validate()
    message = str(info.value)
    assert "'inline_timeout' is a plain function on the async executor" in message
    assert "'inline_stream' is streaming but a plain function on the async executor" in message
    assert "'process_stream' is streaming, which needs the async or thread executor" in message


def test_bad_arguments_are_rejected_when_declared() -> None:
    pipe = Pipeline("args")
    with pytest.raises(PipelineValidationError, match="executor must be one of"):
        pipe.add_task(module_level, executor="gpu")  # type: ignore[arg-type]
    with pytest.raises(PipelineValidationError, match="non-negative numbers"):
        pipe.add_task(module_level, resources={"cpu": -1})
    with pytest.raises(PipelineValidationError, match="retry must be a Retry"):
        pipe.add_task(module_level, retry=3)  # type: ignore[arg-type]
    with pytest.raises(PipelineValidationError, match="max_concurrency"):
        Pipeline("zero", max_concurrency=0)
    with pytest.raises(ValueError, match="at least 1"):
        Retry(attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        Retry(backoff="random")  # type: ignore[arg-type]


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, list[list[int]]]:
    """A random DAG: task ``j`` may depend on any ``i < j``."""
    count = draw(st.integers(1, 12))
    deps = [sorted(draw(st.sets(st.integers(0, j - 1), max_size=3))) if j else [] for j in range(count)]
    return count, deps


@settings(max_examples=60, deadline=None)
@given(dags(), st.integers(1, 4))
def test_any_dag_runs_each_task_once_after_its_dependencies(dag: tuple[int, list[list[int]]], slots: int) -> None:
    count, deps = dag
    pipe = Pipeline("random", max_concurrency=slots)
    order: list[int] = []

    def make(j: int):
        def fn(*inputs: int) -> int:
            order.append(j)
            return j + sum(inputs)

        return fn

    for j in range(count):
        pipe.add_task(make(j), name=f"t{j}", depends_on=[f"t{i}" for i in deps[j]])
    result = pipe.run_sync()

    assert sorted(order) == list(range(count))
    position = {j: p for p, j in enumerate(order)}
    for j in range(count):
        assert all(position[i] < position[j] for i in deps[j])
    expected: dict[int, int] = {}
    for j in range(count):
        expected[j] = j + sum(expected[i] for i in deps[j])
    assert result.outputs == {f"t{j}": expected[j] for j in range(count)}


@settings(max_examples=60, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_is_reported_as_a_cycle_made_of_real_edges(dag: tuple[int, list[list[int]]], data: st.DataObject) -> None:
    count, deps = dag
    low = data.draw(st.integers(0, count - 1))
    high = data.draw(st.integers(low, count - 1))
    deps[low] = [*deps[low], high]  # low now also depends on high (or on itself)
    reachable = _reaches(deps, high, low)
    pipe = Pipeline("back_edge")
    for j in range(count):
        pipe.add_task(module_level, name=f"t{j}", depends_on=[f"t{i}" for i in deps[j]])
    if not reachable:
        pipe.validate()
        return
    with pytest.raises(PipelineValidationError) as info:
        pipe.validate()
    line = next(x for x in str(info.value).splitlines() if "cycle" in x)
    path = line.split("cycle: ")[1].split(" (")[0].split(" -> ")
    assert path[0] == path[-1]
    for upstream, downstream in itertools.pairwise(path):
        assert int(upstream[1:]) in deps[int(downstream[1:])]


def _reaches(deps: list[list[int]], start: int, target: int) -> bool:
    """True when ``start`` depends, directly or not, on ``target`` (or is it)."""
    stack, seen = [start], set()
    while stack:
        node = stack.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(deps[node])
    return False
