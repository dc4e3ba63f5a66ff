"""statefire side by side with Lightning: the same early stop, the same clipped weights, the time taken.

Run it with::

    .venv/bin/python benchmarks/compare_lightning.py

Lightning is not a dependency and this script installs nothing: it runs only
where `lightning` is importable (e.g. `pip install lightning torch==<your torch>`
into a scratch environment). Everything runs in this process, on one thread,
on scikit-learn's digits; the same seed makes the same model on both sides,
and the training loaders draw their order from generators seeded alike.

a) early stopping with only the monitor and the patience given
   (Lightning: `EarlyStopping(monitor="val_loss", patience=3)`; statefire:
   `EarlyStopping(state.val_evaluator_loss.value_ref, patience=3, trainer=trainer)`):
   a small training set overfits, the validation loss turns up, both stop
   at the same epoch. The row "mode='max'" is what statefire's old default
   did: it watched the loss as if higher were better.
b) gradient clipping (`gradient_clip_val=0.5` / `clip_grad_norm=0.5`): the
   largest difference between the weights after 5 epochs, and the fit
   times, with a hand-written torch loop doing the same as the baseline.
c) predict over the test set, 20 times: `trainer.predict`, statefire's
   `predict` and a hand-written `no_grad` loop.

Times are wall seconds (`time.perf_counter`), medians of a few interleaved
repeats; this is a report, not a test.
"""

from __future__ import annotations

import importlib.util
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if importlib.util.find_spec("lightning") is None:
    print("lightning is not importable: nothing to compare (this script installs nothing; "
          "pip install lightning with your torch version pinned, in a scratch environment)")  # fmt: skip
    raise SystemExit(0)

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import EarlyStopping, SupervisedEvaluator, SupervisedTrainer, predict
from statefire.frame import State

torch.set_num_threads(1)
for noisy in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(noisy).setLevel(logging.ERROR)
warnings.filterwarnings("ignore")  # Lightning's advice on num_workers and the like

CE = torch.nn.functional.cross_entropy
digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16
Y = torch.tensor(digits.target)
TRAIN = TensorDataset(X[:150], Y[:150])  # small: it overfits, the validation loss turns up
VAL = TensorDataset(X[1000:1400], Y[1000:1400])
TEST = TensorDataset(X[1400:], Y[1400:])
LR = 0.5


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def train_loader() -> DataLoader:
    return DataLoader(TRAIN, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))


def val_loader() -> DataLoader:
    return DataLoader(VAL, batch_size=len(VAL))  # one batch: the logged mean is the loss over the set


class LitClassifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = make_model()
        self.val_losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return CE(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = CE(self(x), y)
        self.log("val_loss", loss)
        if not self.trainer.sanity_checking:
            self.val_losses.append(loss.item())

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


def lightning_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)  # fmt: skip


def lightning_fit(max_epochs: int, early_stop: bool, **kwargs) -> tuple[LitClassifier, float]:
    module = LitClassifier()
    callbacks = [L.pytorch.callbacks.EarlyStopping(monitor="val_loss", patience=3)] if early_stop else []
    trainer = lightning_trainer(max_epochs=max_epochs, callbacks=callbacks, **kwargs)
    start = time.perf_counter()
    trainer.fit(module, train_loader(), val_loader())
    return module, time.perf_counter() - start


def statefire_fit(max_epochs: int, early_stop: bool, mode: str | None = None, **kwargs):
    with State() as state:
        model = make_model()
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=LR), CE, train_loader(),
                                    n_epochs=max_epochs, **kwargs)  # fmt: skip
        SupervisedEvaluator(model, val_loader(), name="val_evaluator", run_on=trainer.n_epoch_completed_ref,
                            metrics=["loss"], loss_fn=CE)  # fmt: skip
        losses: list[float] = []
        state.val_evaluator_loss.value_ref.attach(losses.append)
        if early_stop:
            EarlyStopping(state.val_evaluator_loss.value_ref, patience=3, trainer=trainer, mode=mode)
        start = time.perf_counter()
        trainer.run()
        return model, losses, time.perf_counter() - start


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


def hand_fit(max_epochs: int, clip: float) -> tuple[torch.nn.Module, float]:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    start = time.perf_counter()
    loader = train_loader()
    for _ in range(max_epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            CE(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in val_loader():
                CE(model(x), y)
    return model, time.perf_counter() - start


def report(times: dict[str, list[float]]) -> None:
    """Median seconds and the ratios to the hand loop: of the medians, and of the minimums (least disturbed)."""
    median = {k: statistics.median(v) for k, v in times.items()}
    least = {k: min(v) for k, v in times.items()}
    for label in times:
        print(f"  {label:<12}{median[label]:8.3f} s   {median[label] / median['hand loop']:6.2f} x the hand loop "
              f"(minimums: {least[label] / least['hand loop']:.2f} x)")  # fmt: skip


def main() -> None:
    print(f"lightning {L.__version__}, torch {torch.__version__}")

    print("\na) early stopping, monitor='val_loss' and patience=3 only, at most 40 epochs")
    lit, lit_time = lightning_fit(40, early_stop=True)
    ours, losses, our_time = statefire_fit(40, early_stop=True)
    _, old_losses, _ = statefire_fit(40, early_stop=True, mode="max")
    print(f"  {'':<34}{'epochs':>7}{'best epoch':>11}{'best val loss':>15}{'fit s':>8}")
    for label, values, seconds in [
        ("Lightning", lit.val_losses, lit_time),
        ("statefire (mode from the Loss)", losses, our_time),
        ("statefire mode='max' (old default)", old_losses, float("nan")),
    ]:
        best = min(range(len(values)), key=values.__getitem__)
        print(f"  {label:<34}{len(values):>7}{best + 1:>11}{values[best]:>15.6f}{seconds:>8.2f}")
    common = min(len(lit.val_losses), len(losses))
    gap = max(abs(a - b) for a, b in zip(lit.val_losses[:common], losses[:common], strict=True))
    print(f"  same stop epoch: {len(lit.val_losses) == len(losses)}; largest val-loss difference per epoch: "
          f"{gap:.3g}; largest weight difference: {max_difference(lit.net, ours):.3g}")  # fmt: skip

    print("\nb) gradient clipping by norm 0.5, 5 epochs (fit seconds, median of 3 interleaved)")
    times: dict[str, list[float]] = {"Lightning": [], "statefire": [], "hand loop": []}
    for _ in range(3):
        lit, seconds = lightning_fit(5, early_stop=False, gradient_clip_val=0.5)
        times["Lightning"].append(seconds)
        ours, _, seconds = statefire_fit(5, early_stop=False, clip_grad_norm=0.5)
        times["statefire"].append(seconds)
        hand, seconds = hand_fit(5, 0.5)
        times["hand loop"].append(seconds)
    print(f"  largest weight difference: Lightning vs statefire {max_difference(lit.net, ours):.3g}, "
          f"hand loop vs statefire {max_difference(hand, ours):.3g}")  # fmt: skip
    report(times)

    print("\nc) predict over the test set (397 samples, batches of 64), 20 times, median of 5")
    model = make_model()
    module = LitClassifier()
    loader = DataLoader(TEST, batch_size=64)
    predictor = lightning_trainer()
    ptimes: dict[str, list[float]] = {"Lightning": [], "statefire": [], "hand loop": []}
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            theirs = torch.cat(predictor.predict(module, loader))
        ptimes["Lightning"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(20):
            mine = torch.cat(predict(model, loader))
        ptimes["statefire"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(20):
            model.eval()
            with torch.no_grad():
                hand = torch.cat([model(x) for x, _ in loader])
            model.train()
        ptimes["hand loop"].append(time.perf_counter() - start)
    print(f"  same outputs: Lightning {torch.equal(theirs, mine)}, hand loop {torch.equal(hand, mine)}")
    report(ptimes)


if __name__ == "__main__":
    main()
