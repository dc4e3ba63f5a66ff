"""Writers and checkpoints given no directory write into the State's provider (a Run, a tree node)."""

from __future__ import annotations

from pathlib import Path

import pytest

from statefire.features import Checkpoint, Engine, ScalarChart, TensorBoard
from statefire.frame import Feature, State


class Provider(Feature):
    """The smallest artifact provider: what `Run` and tree nodes offer."""

    category = "plugins"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def artifact_dir(self, kind: str) -> Path:
        return self.root / kind


@pytest.mark.parametrize("provider_first", [True, False])
def test_writer_and_checkpoint_write_into_the_provider(tmp_path, provider_first):
    """Whichever is created first, the files land under the provider's directories."""
    with State():
        if provider_first:
            Provider(tmp_path)
        trainer = Engine("trainer", lambda engine, batch: float(batch), data=[1, 2, 3])
        writer = TensorBoard()
        ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref)
        checkpoint = Checkpoint(trigger=trainer.n_epoch_completed_ref)
        if not provider_first:
            Provider(tmp_path)
        trainer.run()
        writer.close()
    assert writer.log_dir == str(tmp_path / "tb")
    assert any((tmp_path / "tb" / "trainer").iterdir())
    assert checkpoint.dirname == tmp_path / "checkpoints"
    assert Checkpoint.latest(tmp_path / "checkpoints").name == "checkpoint_1.pt"


def test_no_directory_and_no_provider_is_a_clear_error(tmp_path):
    """Without a directory or a provider, the first write says to pass one or create a Run."""
    with State():
        trainer = Engine("trainer", lambda engine, batch: batch, data=[1])
        Checkpoint(trigger=trainer.n_epoch_completed_ref)
        with pytest.raises(ValueError, match=r"Checkpoint\(\) was given no directory.*Run"):
            trainer.run()
