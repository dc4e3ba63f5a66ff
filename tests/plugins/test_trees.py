"""Experiment trees: nodes named by content, realized once, resumable after SIGKILL, locked, queryable.

The digits experiment of `tree_experiment.py` (root -> train -> prune {0.3,
0.6} -> finetune) is realized once per module and read by most tests; the
kill and lock tests run it in real subprocesses.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import tree_experiment as exp
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from statefire.features import Model
from statefire.frame import Params, State
from statefire.plugins import ExperimentTree, TreeNode
from statefire.plugins.cli import main
from statefire.plugins.trees import BuildMismatchError, RecipeError, TreeLockedError

SCRIPT = Path(exp.__file__)
ENV = {**os.environ, "PYTHONPATH": str(SCRIPT.parent), "MPLBACKEND": "Agg"}


@pytest.fixture(scope="module", autouse=True)
def digits_file(tmp_path_factory):
    """The digits as tensors, saved once so the tree subprocesses start without importing sklearn."""
    path = tmp_path_factory.mktemp("digits") / "digits.pt"
    torch.save(exp.digits(), path)
    ENV["TREE_DIGITS"] = str(path)
    yield path
    del ENV["TREE_DIGITS"]


@pytest.fixture(scope="module")
def realized(tmp_path_factory) -> tuple[ExperimentTree, object]:
    """The six-node digits tree, realized once in this process."""
    directory = tmp_path_factory.mktemp("trees") / "prune"
    tree = exp.make_tree(str(directory))
    result = tree.run()
    return tree, result


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    accumulator = EventAccumulator(str(run_dir)).Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def weights(state: State) -> dict[str, torch.Tensor]:
    return state.sequential.module.state_dict()


# -- a real tree: train, prune, fine-tune ---------------------------------------------------


def test_run_realizes_parents_first_each_once_and_records_metrics(realized):
    """Six nodes computed, parents before children; each node's record holds its final metrics."""
    tree, result = realized
    paths = [n.path for n in result.computed]
    assert len(paths) == 6 and not result.failed and not result.skipped
    for node in result.computed:
        if node.parent is not None:
            assert paths.index(node.parent.path) < paths.index(node.path)
    trained = tree.find(recipe="train")[0]
    assert trained.metrics["val_evaluator_accuracy"] > 0.75  # real training on digits
    for finetuned in tree.find(recipe="finetune"):
        assert finetuned.metrics["val_evaluator_accuracy"] > trained.metrics["val_evaluator_accuracy"]
    record = json.loads((tree.dir / "nodes" / f"{trained.id}.json").read_text())
    assert record["recipe"] == "tree_experiment.train" and record["kwargs"] == {"n_epochs": 2}
    assert record["parent"] == tree.root().id and record["status"] == "completed" and record["duration"] > 0
    assert record["metrics"] == trained.metrics


def test_a_child_starts_from_its_parents_state(realized):
    """A pruned node holds the trained weights with the smallest 30% set to zero; fine-tuning keeps training."""
    tree, _ = realized
    trained = tree.find(recipe="train")[0].load()
    pruned = tree.find(recipe="prune", where=lambda n: n.kwargs["amount"] == 0.3)[0].load()
    w_trained, w_pruned = weights(trained)["0.weight"], weights(pruned)["0.weight"]
    zeros = (w_pruned == 0).float().mean().item()
    assert 0.29 < zeros < 0.31
    assert torch.equal(w_pruned[w_pruned != 0], w_trained[w_pruned != 0])
    finetuned = tree.find(recipe="finetune")[0].load()
    assert finetuned.trainer.n_epoch_completed == 4 and trained.trainer.n_epoch_completed == 2
    assert finetuned.sgd.lr == 0.05


def test_rerun_recomputes_nothing_and_opens_realized_nodes_at_once(realized):
    """A second script run finds every node on disk: before any then(), and after it, nothing to compute."""
    tree, _ = realized
    reopened = ExperimentTree(tree.dir, exp.build)
    assert sorted(n.id for n in reopened.find()) == sorted(n.id for n in tree.find())
    again = exp.make_tree(str(tree.dir))
    result = again.run()
    assert not result.computed and len(result.cached) == 6


def test_changed_kwargs_or_recipe_body_make_new_nodes_and_old_ones_stay(realized, tmp_path):
    """Same recipe and kwargs: same id. Other kwargs (1 vs 1.0 too) or another body: a new id."""
    tree, _ = realized
    reopened = ExperimentTree(tree.dir, exp.build)
    trained = reopened.root().then(exp.train, n_epochs=2)
    assert trained.completed and trained.id == tree.find(recipe="train")[0].id
    assert trained.then(exp.prune, amount=0.3) is trained.then(exp.prune, amount=0.3)
    assert trained.then(exp.prune, amount=0.4).status == "pending"
    assert reopened.root().then(exp.train, n_epochs=2.0).id != trained.id  # 1 and 1.0 differ
    # the same recipe name with another body, from another module: a new node
    other = tmp_path / "other_recipes.py"
    other.write_text(SCRIPT.read_text().replace("state.trainer.run(n_epochs=n_epochs)\n\n\ndef prune",
                                                "state.trainer.run(n_epochs=n_epochs + 0)\n\n\ndef prune"))
    module = _import(other)
    assert reopened.root().then(module.train, n_epochs=2).id != trained.id
    # the same source in another module: the same node (the module is not part of the identity)
    assert reopened.root().then(module.finetune, n_epochs=2).id == reopened.root().then(exp.finetune, n_epochs=2).id
    assert len(ExperimentTree.load(tree.dir).find()) == 6  # nothing was removed


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tensorboard_writes_one_folder_per_node_and_a_parent_never_redirects_a_child(realized):
    """Each node's curves land in tb/<its folder>/<engine>; a child's continue its parent's x axis there."""
    tree, _ = realized
    trained = tree.find(recipe="train")[0]
    finetuned = tree.find(recipe="finetune", where=lambda n: n.parent.kwargs["amount"] == 0.3)[0]
    assert trained.folder == f"train(n_epochs=2)~{trained.short_id}"
    parent_points = scalars(tree.dir / "tb" / trained.folder / "trainer", "loss")
    child_points = scalars(tree.dir / "tb" / finetuned.folder / "trainer", "loss")
    # each loss at its own step's samples: 2 epochs of 20 batches of 50
    assert [s for s, _ in parent_points] == list(range(50, 2001, 50))
    assert [s for s, _ in child_points] == list(range(2050, 4001, 50))  # no point went to the parent's folder
    accuracy = scalars(tree.dir / "tb" / finetuned.folder / "val_evaluator", "val_accuracy")
    assert accuracy[-1] == (4000, pytest.approx(finetuned.metrics["val_evaluator_accuracy"]))
    # Checkpoint() without a directory writes into the node's folder too
    assert [p.name for p in (tree.dir / "checkpoints" / finetuned.folder).iterdir()] == ["checkpoint_4.pt"]


def test_load_without_build_queries_the_tree(realized, tmp_path):
    """ExperimentTree.load(dir): ids, paths, parents, children, metrics, find, leaves, graph, pictures."""
    tree, _ = realized
    loaded = ExperimentTree.load(tree.dir)
    assert len(loaded.find()) == 6
    (pruned,) = loaded.find(recipe="tree_experiment.prune", where=lambda n: n.kwargs == {"amount": 0.6})
    assert pruned.path == "root/train(n_epochs=2)/prune(amount=0.6)" and pruned.depth == 2
    assert pruned.parent.name == "train" and [c.name for c in pruned.children] == ["finetune"]
    assert sorted(n.path for n in loaded.leaves()) == [
        "root/train(n_epochs=2)/prune(amount=0.3)/finetune(n_epochs=2)",
        "root/train(n_epochs=2)/prune(amount=0.6)/finetune(n_epochs=2)",
    ]
    graph = loaded.graph
    assert graph.number_of_nodes() == 6 and graph.number_of_edges() == 5
    assert graph.has_edge(pruned.parent.id, pruned.id) and graph.nodes[pruned.id]["kwargs"] == {"amount": 0.6}
    for name in ("tree.png", "tree.svg", "tree.mmd"):
        loaded.save(tmp_path / name, metric="val_evaluator_accuracy")
    assert (tmp_path / "tree.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "prune(amount=0.6)" in (tmp_path / "tree.svg").read_text()
    mermaid = (tmp_path / "tree.mmd").read_text()
    assert mermaid.startswith("graph TD")
    assert f"val_evaluator_accuracy={pruned.metrics['val_evaluator_accuracy']:.4g}" in mermaid
    assert mermaid.count("-->") == 5
    with pytest.raises(ValueError, match=r"use \.png, \.svg, \.pdf or \.mmd"):
        loaded.save(tmp_path / "tree.gif")
    with pytest.raises(Exception, match="opened without build"):
        pruned.load()


def test_node_load_leaves_the_callers_rng_alone_and_its_writers_write_nothing(realized):
    """Inspecting a node: the caller's random streams go on unchanged; training the loaded state writes no event."""
    tree, _ = realized
    node = tree.find(recipe="prune")[0]
    tb_files = sorted(p for p in (tree.dir / "tb").rglob("*") if p.is_file())
    torch.manual_seed(123)
    random.seed(5)
    state = node.load()  # build() seeds torch: the caller's streams are put back
    drawn = (torch.rand(3), random.random())
    torch.manual_seed(123)
    random.seed(5)
    assert torch.equal(drawn[0], torch.rand(3)) and drawn[1] == random.random()
    with state:
        state.trainer.run(n_epochs=1)
    assert sorted(p for p in (tree.dir / "tb").rglob("*") if p.is_file()) == tb_files


def test_map_applies_a_function_to_restored_nodes(realized):
    tree, _ = realized
    nodes = tree.find(recipe="prune")
    sparsity = tree.map(lambda state: (weights(state)["0.weight"] == 0).float().mean().item(), nodes)
    assert list(sparsity) == [n.id for n in nodes]
    assert [round(v, 1) for v in sparsity.values()] == [0.3, 0.6]


def test_cli_tree_show_prints_status_and_chosen_metrics(realized, capsys):
    tree, _ = realized
    assert main(["tree", "show", str(tree.dir), "--metric", "val_evaluator_accuracy"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("root  completed")
    finetuned = tree.find(recipe="finetune")[0]
    assert any(f"finetune(n_epochs=2)  completed  {finetuned.short_id}  val_evaluator_accuracy=" in line
               for line in lines)  # fmt: skip
    assert "val_evaluator_loss" not in out
    assert main(["tree", "show", str(tree.dir), "--metric", "nope"]) == 1
    assert "no node has the metric(s) nope" in capsys.readouterr().err


# -- killed, locked -----------------------------------------------------------------------------


def _start(directory: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), str(directory)], env={**ENV, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the tree process ended early: {process.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigkill_mid_node_then_rerun_gives_the_uninterrupted_numbers(realized, tmp_path):
    """SIGKILL while a fine-tune trains: a rerun keeps the realized nodes, redoes that one from its parent,
    clears its partial event files, and every number equals the uninterrupted tree's."""
    uninterrupted, _ = realized
    directory = tmp_path / "killed"
    mark = tmp_path / "paused"
    process = _start(directory, TREE_PAUSE_IN="finetune", TREE_PAUSE_MARK=str(mark))
    try:
        _wait_for(mark, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    before = {n.path: n.finished for n in ExperimentTree.load(directory).find()}
    assert len(before) == 3  # root, train, prune(0.3): realized before the kill (depth first)
    interrupted = exp.make_tree(str(directory)).find(recipe="prune")[0].children[0]
    assert interrupted.status == "pending" and not (directory / "nodes" / f"{interrupted.id}.json").exists()
    assert scalars(directory / "tb" / interrupted.folder / "trainer", "loss")  # one epoch was on disk
    (directory / "nodes" / f"{interrupted.id}.pt.tmp-99999").write_bytes(b"half a checkpoint")

    result = exp.make_tree(str(directory)).run()  # the second run, in this process
    recomputed = sorted(n.path for n in uninterrupted.find() if n.path not in before)
    assert sorted(n.path for n in result.computed) == recomputed
    assert not list((directory / "nodes").glob("*.tmp-*"))  # a killed write's temp file was never read, then removed
    resumed = ExperimentTree(directory, exp.build)
    assert {n.path: n.finished for n in resumed.find() if n.path in before} == before  # kept, not redone
    for node in uninterrupted.find():
        twin = resumed.node(node.id)
        assert twin.metrics == node.metrics, node.path
    for node in uninterrupted.leaves():
        for name, tensor in weights(node.load()).items():
            assert torch.equal(weights(resumed.node(node.id).load())[name], tensor), (node.path, name)
        expected = scalars(uninterrupted.dir / "tb" / node.folder / "trainer", "loss")
        assert scalars(directory / "tb" / node.folder / "trainer", "loss") == expected  # no doubled curve


def test_a_second_process_waits_for_the_lock_and_no_node_is_written_twice(tmp_path):
    """One process runs the tree; another fails at once with timeout=0, or waits and then computes nothing."""
    directory = tmp_path / "locked"
    calls = tmp_path / "calls.jsonl"
    mark = tmp_path / "paused"
    process = _start(directory, TREE_PAUSE_IN="train", TREE_PAUSE_MARK=str(mark), TREE_PAUSE_SECONDS="2",
                     TREE_CALLS=str(calls))  # fmt: skip
    try:
        _wait_for(mark, process)
        tree = exp.make_tree(str(directory))
        with pytest.raises(TreeLockedError, match=rf"another process \(pid {process.pid}\)"):
            tree.run(timeout=0)
        assert process.poll() is None  # still running: this one now waits for it
        result = tree.run(timeout=240)
        out, err = process.communicate(timeout=240)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert len(json.loads(out.splitlines()[-1])["computed"]) == 6
    assert not result.computed and len(result.cached) == 6
    logged = [json.loads(line) for line in calls.read_text().splitlines()]
    assert sorted(json.dumps(call[1:]) for call in logged) == sorted(  # each of the five recipe nodes once
        json.dumps(call) for call in [["train", {"n_epochs": 2}], ["prune", {"amount": 0.3}],
                                      ["prune", {"amount": 0.6}], *[["finetune", {"n_epochs": 2}]] * 2])
    assert {json.loads(line)[0] for line in calls.read_text().splitlines()} == {process.pid}


# -- failures and bad input ---------------------------------------------------------------------


def build_small() -> None:
    torch.manual_seed(0)
    Model(torch.nn.Linear(4, 2), name="net")
    Params(name="hp", level=0)


def step(state: State, by: int) -> None:
    state.hp.level += by


def configure(state: State, by: dict) -> None:
    state.hp.level = len(by)


def flaky(state: State) -> None:
    if os.environ.get("TREE_FAIL"):
        raise RuntimeError("flaky failed on purpose")
    state.hp.level += 100


def test_a_failing_recipe_fails_its_node_skips_descendants_and_is_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("TREE_FAIL", "1")
    tree = ExperimentTree(tmp_path / "t", build_small)
    bad = tree.root().then(flaky)
    below = bad.then(step, by=1)
    sibling = tree.root().then(step, by=2)
    with pytest.warns(UserWarning, match="flaky failed on purpose"):
        result = tree.run()
    assert result.failed == [bad] and result.skipped == [below] and sibling in result.computed
    assert bad.status == "failed" and bad.error == "RuntimeError: flaky failed on purpose"
    assert below.status == "skipped" and sibling.load().hp.level == 2
    loaded = ExperimentTree.load(tmp_path / "t")
    assert [n.path for n in loaded.failed()] == ["root/flaky()"] and "flaky failed" in loaded.failed()[0].error
    assert 'raise RuntimeError("flaky failed on purpose")' in loaded.failed()[0].traceback
    assert "root/flaky()" not in [n.path for n in loaded.find()]
    monkeypatch.delenv("TREE_FAIL")
    tree = ExperimentTree(tmp_path / "t", build_small)
    bad = tree.root().then(flaky)
    below = bad.then(step, by=1)
    result = tree.run()
    assert result.computed == [bad, below] and not tree.failed()
    assert below.load().hp.level == 101


def test_recipe_added_features_are_dropped_and_an_unloadable_state_is_reported(tmp_path):
    def adds_a_feature(state):
        Params(name="extra", x=1)
        state.hp.level = 7

    def prunes_without_remove(state):
        torch.nn.utils.prune.l1_unstructured(state.net.module, "weight", amount=0.5)

    tree = ExperimentTree(tmp_path / "t", build_small)
    added = tree.root().then(adds_a_feature)
    bad = tree.root().then(prunes_without_remove)
    with pytest.warns(UserWarning, match="prunes_without_remove"):
        tree.run()
    restored = added.load()
    assert restored.hp.level == 7 and "extra" not in [f.name for f in restored.features]
    assert bad.status == "failed" and bad.error.startswith("NodeStateError: recipe")
    for text in ("prunes_without_remove", "missing components.net.module.weight",
                 "unexpected components.net.module.weight_mask", "unexpected components.net.module.weight_orig",
                 "prune.remove"):  # fmt: skip
        assert text in bad.error


def test_a_build_with_other_features_is_refused_naming_the_paths(tmp_path):
    tree = ExperimentTree(tmp_path / "t", build_small)
    tree.root().then(step, by=1)
    tree.run()

    def build_other():  # other features in the same directory
        Model(torch.nn.Linear(4, 3), name="net")
        Params(name="knobs", level=0)

    other = ExperimentTree(tmp_path / "t", build_other)
    other.root()
    with pytest.raises(BuildMismatchError) as error:
        other.run()
    message = str(error.value)
    for text in ("missing params.hp.level", "new params.knobs.level",
                 "components.net.module.weight is tensor[3, 4], was tensor[2, 4]"):  # fmt: skip
        assert text in message


def test_a_build_that_makes_its_features_elsewhere_is_refused(tmp_path):
    def build_elsewhere():
        with State():  # not the State the tree gives it
            Params(name="hp", level=0)

    with pytest.raises(Exception, match=r"build\(\) .*build_elsewhere.* made no feature in the current State"):
        tree = ExperimentTree(tmp_path / "t", build_elsewhere)
        tree.root()
        tree.run()


def test_kwargs_must_be_json_data_and_recipes_need_readable_source(tmp_path):
    tree = ExperimentTree(tmp_path / "t", build_small)
    root = tree.root()
    with pytest.raises(RecipeError, match=r"kwarg 'by' of recipe 'step' is tuple: \(1, 2\).*pass a list"):
        root.then(step, by=(1, 2))
    with pytest.raises(RecipeError, match=r"kwarg 'by'\[0\]\['m'\] of recipe 'step' is Linear"):
        root.then(step, by=[{"m": torch.nn.Linear(1, 1)}])
    with pytest.raises(RecipeError, match=r"nan.*finite"):
        root.then(step, by=float("nan"))
    with pytest.raises(RecipeError, match="functools.partial.*then\\(fn, amount=0.3\\)"):
        root.then(functools.partial(step, by=1))
    namespace: dict = {}
    exec("def typed_in_a_repl(state):\n    pass\n", namespace)
    with pytest.raises(RecipeError, match="'typed_in_a_repl' has no readable source"):
        root.then(namespace["typed_in_a_repl"])
    with pytest.raises(RecipeError, match="must be a function"):
        root.then(print)
    assert root.then(step, by=1, ) is root.then(step, **{"by": 1})
    assert root.then(configure, by={"a": 1, "b": 2}).id == root.then(configure, by={"b": 2, "a": 1}).id
    # lambdas work when their source is readable; two on one line stay apart
    first, second = root.then(lambda s: step(s, 1)), root.then(lambda s: step(s, 2))
    assert first.id != second.id
    tree.run()
    assert first.load().hp.level == 1 and second.load().hp.level == 2
    assert isinstance(first, TreeNode) and first.name == "<lambda>"


def test_an_interrupted_save_is_never_read(tmp_path):
    """A record without its checkpoint, or a checkpoint without its record, is not a realized node."""
    tree = ExperimentTree(tmp_path / "t", build_small)
    node = tree.root().then(step, by=1)
    tree.run()
    node.checkpoint_path.unlink()  # as if killed between writing the record... and losing the file
    again = ExperimentTree(tmp_path / "t", build_small)
    assert [n.path for n in again.find()] == ["root"]
    (tmp_path / "t" / "nodes" / f"{node.id}.json").unlink()
    node.checkpoint_path.write_bytes(b"garbage: a checkpoint with no record")
    again = ExperimentTree(tmp_path / "t", build_small)
    redo = again.root().then(step, by=1)
    assert again.run().computed == [redo] and redo.load().hp.level == 1
