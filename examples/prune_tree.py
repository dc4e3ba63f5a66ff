"""Prune a trained MLP by 30% and 60%, fine-tune each, compare the branches: an experiment tree.

    root ── train(n_epochs=6) ─┬─ prune(amount=0.3) ── finetune(n_epochs=3)
                               └─ prune(amount=0.6) ── finetune(n_epochs=3)

Each node is a checkpoint on disk, named by what made it: run the script
again and nothing is recomputed; kill it and it continues. Every node's
TensorBoard curves go to `trees/prune_tree/tb/<node>/<engine>`, so the
branches overlay:  tensorboard --logdir trees/prune_tree/tb
The tree is drawn to trees/prune_tree/tree.png.
Run: python examples/prune_tree.py
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.nn.utils import prune as torch_prune
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import ScalarChart, SupervisedEvaluator, SupervisedTrainer, TensorBoard
from statefire.frame import State
from statefire.plugins import ExperimentTree

torch.set_num_threads(1)  # a model this small trains faster on one thread
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)
x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)


def build():
    """One experiment, made in the current State: the same code makes every node."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader)
    SupervisedEvaluator(model, DataLoader(TensorDataset(x_val, y_val), batch_size=512), name="val_evaluator",
                        run_on=trainer.n_epoch_completed_ref, metrics=["accuracy", "loss"],
                        loss_fn=torch.nn.functional.cross_entropy)
    TensorBoard()  # no directory: inside a node it writes to the tree's tb/<node>/
    metrics = State.current().metrics
    for name in ("accuracy", "loss"):
        ScalarChart(metrics[f"val_evaluator_{name}"].value_ref, trainer.n_samples_ref, tag=f"val/{name}")


def linear_layers(state):
    return [layer for layer in state.sequential.module if isinstance(layer, torch.nn.Linear)]


def train(state, n_epochs):
    state.trainer.run(n_epochs=n_epochs)


def prune(state, amount):
    """Zero the smallest `amount` of each layer's weights, then evaluate the pruned model."""
    for layer in linear_layers(state):
        torch_prune.l1_unstructured(layer, "weight", amount=amount)
        torch_prune.remove(layer, "weight")  # a plain weight again: the node loads into build()'s model
    state.val_evaluator.run()


def finetune(state, n_epochs):
    """Train on with a lower learning rate, keeping pruned weights at zero."""
    layers = linear_layers(state)
    for layer in layers:
        torch_prune.custom_from_mask(layer, "weight", mask=layer.weight != 0)
    state.adam.lr = 1e-3
    state.trainer.run(n_epochs=n_epochs)
    for layer in layers:
        torch_prune.remove(layer, "weight")


def sparsity(state):
    weights = [layer.weight for layer in linear_layers(state)]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


tree = ExperimentTree("trees/prune_tree", build)
trained = tree.root().then(train, n_epochs=6)
for amount in (0.3, 0.6):
    trained.then(prune, amount=amount).then(finetune, n_epochs=3)
result = tree.run()
print(result)
print(tree.format(metrics=["val_evaluator_accuracy"]))

# Compare the branches: accuracy and sparsity of each fine-tuned leaf (restored from disk).
measured = tree.map(sparsity, tree.leaves())
for leaf in tree.leaves():
    print(f"{leaf.path}: val accuracy {leaf.metrics['val_evaluator_accuracy']:.3f}, "
          f"{measured[leaf.id]:.0%} of the weights are zero")
tree.save(tree.dir / "tree.png", metric="val_evaluator_accuracy")
print(f"drew {tree.dir / 'tree.png'}; compare the branches with: tensorboard --logdir {tree.dir / 'tb'}")
