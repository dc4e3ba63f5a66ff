"""MLflow: a Run mirrored to a local tracking store, read back with mlflow's own client."""

from __future__ import annotations

import json
import subprocess

from mlflow.tracking import MlflowClient

from statefire.frame import Params, State
from statefire.features import AverageOutput, Engine, ScalarChart, TensorBoard
from statefire.plugins import MLflow, Registry, Run


def test_params_series_tags_and_artifacts_reach_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a sqlite store keeps its artifacts in ./mlruns
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.name", "T"], ["config", "user.email", "t@example.com"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "train.py").write_text("print('train')\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with State():
        Params(name="hp", lr=0.5)
        trainer = Engine("trainer", lambda engine, batch: batch * 0.5, data=[1.0, 3.0], n_epochs=3)
        mean = AverageOutput(engine=trainer, name="mean")
        MLflow(uri, experiment="mirrored")  # before the Run: it binds when the Run arrives
        run = Run(tmp_path / "runs", name="first", snapshot=repo)
        TensorBoard()
        ScalarChart(mean.value_ref, trainer.n_samples_ref)
        trainer.run()
        run.finish()
    record = json.loads((run.dir / "run.json").read_text())
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mirrored")
    (mirrored,) = client.search_runs([experiment.experiment_id])
    assert mirrored.info.run_name == "first" and mirrored.info.status == "FINISHED"
    assert mirrored.data.params == {k: str(v) for k, v in record["config"].items()}
    assert mirrored.data.tags["statefire.run_id"] == run.id
    assert mirrored.data.tags["statefire.git.snapshot"] == record["git"]["snapshot"]
    assert mirrored.data.tags["mlflow.source.git.commit"] == record["git"]["snapshot"]
    history = client.get_metric_history(mirrored.info.run_id, "mean")
    series = Registry(tmp_path / "runs").get(run.id).series("mean")
    assert [(m.step, m.value) for m in history] == [(step, value) for step, value, _ in series] == [
        (2, 1.0), (4, 1.0), (6, 1.0)]
    artifacts = {a.path for a in client.list_artifacts(mirrored.info.run_id)}
    assert {"run.json", "config.json", "flow.svg", "tb"} <= artifacts
    assert any(a.path.startswith("tb/") for a in client.list_artifacts(mirrored.info.run_id, "tb"))
