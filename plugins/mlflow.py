"""Mirror a Run to an MLflow tracking server: params, series, tags (the git snapshot) and artifacts.

For when a team outgrows one machine's registry: the Run keeps writing its
directory and `registry.sqlite`, and `MLflow()` sends the same things to
MLflow as they are flushed (series at epoch ends, the rest when the run
ends). Needs the optional extra: `pip install 'statefire[mlflow]'`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from statefire.frame import Feature

from ._snapshot import RunWarning

__all__ = ["MLflow"]

_BATCH = 1000  # MLflow's limit of metrics per log_batch call
_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def _client(tracking_uri: str | None) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ImportError(
            "MLflow() needs the mlflow client: pip install 'statefire[mlflow]' (or mlflow-skinny)"
        ) from None
    return MlflowClient(tracking_uri=tracking_uri)


class MLflow(Feature):
    """Mirrors this State's `Run` to MLflow: params, metric series, git tags, run.json, flow.svg and tb/.

    Created before or after the Run. The MLflow run is named after the
    Run's name (else its id) and tagged `statefire.run_id`; resuming a Run
    continues the same MLflow run. A failing server is reported once as a
    `RunWarning` and never stops training.

    Args:
        tracking_uri: where MLflow stores runs (`sqlite:///mlflow.db`, an
            `http://` server, ...); None: MLflow's own default
            (`MLFLOW_TRACKING_URI`).
        experiment: the MLflow experiment (default: the Run's experiment).

    Example:
        >>> import os, tempfile
        >>> from statefire.frame import State
        >>> from statefire.plugins import MLflow, Run
        >>> with tempfile.TemporaryDirectory() as root, State():
        ...     uri = "sqlite:///" + os.path.join(root, "mlflow.db")
        ...     mirror = MLflow(uri, experiment="demo")
        ...     run = Run(root, name="first", snapshot=False)
        ...     run.finish()
        ...     print(mirror.client.get_run(mirror.run_id).info.status)
        FINISHED
    """

    category = "plugins"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, *,
                 name: str | None = None) -> None:
        if tracking_uri is not None and not isinstance(tracking_uri, (str, os.PathLike)):
            raise TypeError(f"tracking_uri of MLflow must be a URI string or None, got {tracking_uri!r}")
        if experiment is not None and (not isinstance(experiment, str) or not experiment):
            raise TypeError(f"experiment of MLflow must be a non-empty string or None, got {experiment!r}")
        super().__init__(name=name)
        self.client = _client(None if tracking_uri is None else os.fspath(tracking_uri))
        self.experiment = experiment
        self.run_id: str | None = None
        self._logged_params: set[str] = set()
        self._warned = False
        from .runs import Run

        for feature in self.state.features:
            if isinstance(feature, Run):
                self._bind(feature)
        self.state.plugins.added_ref.attach(self._on_plugin, owner=self)

    def _on_plugin(self, feature: Any) -> None:
        from .runs import Run

        if isinstance(feature, Run):
            self._bind(feature)

    def _guard(self, what: str, work: Any) -> None:
        try:
            work()
        except Exception as error:
            if not self._warned:
                self._warned = True
                warnings.warn(f"MLflow: could not {what} ({type(error).__name__}: {error}); the run goes on and "
                              "its directory keeps everything", RunWarning, stacklevel=3)

    def _bind(self, run: Any) -> None:
        if not run.is_writer or self.run_id is not None:
            return

        def bind() -> None:
            client = self.client
            name = self.experiment or run.experiment
            found = client.get_experiment_by_name(name)
            experiment_id = found.experiment_id if found is not None else client.create_experiment(name)
            previous = client.search_runs([experiment_id], filter_string=f"tags.`statefire.run_id` = '{run.id}'")
            if previous:
                self.run_id = previous[0].info.run_id
                client.update_run(self.run_id, status="RUNNING")
                self._logged_params = set(previous[0].data.params)
            else:
                self.run_id = client.create_run(
                    experiment_id, run_name=run.display_name or run.id, tags={"statefire.run_id": run.id}
                ).info.run_id

        self._guard("start the MLflow run", bind)
        if self.run_id is not None:
            run._mirrors.append(self)

    def _log_params(self, run: Any) -> None:
        from mlflow.entities import Param

        config = run.record.get("config") or {}  # as captured on the main thread at the last save
        params = [Param(k, str(v)[:6000]) for k, v in config.items() if k not in self._logged_params]
        for start in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        self._logged_params.update(p.key for p in params)

    # -- called by the Run --------------------------------------------------------------
    def series(self, run: Any, points: list[tuple[str, Any, float, float]]) -> None:
        """Send flushed points `(key, step, value, wall_time)` as MLflow metrics."""
        from mlflow.entities import Metric

        def send() -> None:
            if not self._logged_params:  # params are immutable in MLflow: log them once the engines run
                self._log_params(run)
            metrics = [Metric(key, float(value), int(wall * 1000), int(step)) for key, step, value, wall in points]
            for start in range(0, len(metrics), _BATCH):
                self.client.log_batch(self.run_id, metrics=metrics[start:start + _BATCH])

        self._guard("send metric series", send)

    def finish(self, run: Any) -> None:
        """The final params, the git tags, the artifacts and the status."""

        def end() -> None:
            client, run_id = self.client, self.run_id
            self._log_params(run)
            record = run.record
            tags = {"statefire.status": record.get("status", ""), "statefire.dir": str(run.dir)}
            git = record.get("git")
            if git:
                tags.update({f"statefire.git.{k}": str(v) for k, v in git.items()})
                tags["mlflow.source.git.commit"] = str(git.get("snapshot"))
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            for name in ("run.json", "config.json", "flow.svg"):
                if (run.dir / name).is_file():
                    client.log_artifact(run_id, str(run.dir / name))
            if (run.dir / "tb").is_dir():
                client.log_artifacts(run_id, str(run.dir / "tb"), artifact_path="tb")
            client.set_terminated(run_id, status=_STATUS.get(record.get("status"), "FINISHED"))

        self._guard("finish the MLflow run", end)
