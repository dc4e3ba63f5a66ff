"""`auto_model`, `auto_optim`, `auto_dataloader` and `any_process` in one process.

With several processes they are tested under torchrun (`test_torchrun.py`);
here: what a single process gets, how components are registered and
reused, and that a DistributedDataParallel model's checkpoint holds the
inner module's weights.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from statefire.features import (
    Model,
    Optimizer,
    SupervisedEvaluator,
    SupervisedTrainer,
    auto_dataloader,
    auto_model,
    auto_optim,
)
from statefire.features.distributed import any_process
from statefire.frame import State


def test_one_process_gets_its_objects_back_registered_once():
    """The pipelines given what auto_* returned reuse the components: one model, one optimizer."""
    with State() as state:
        network = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
        model = auto_model(network)
        optimizer = auto_optim(torch.optim.SGD(model.parameters(), lr=0.1))
        data = torch.utils.data.TensorDataset(torch.randn(10, 4), torch.randint(0, 2, (10,)))
        loader = auto_dataloader(data, batch_size=4, shuffle=True)
        assert model is network and isinstance(loader, torch.utils.data.DataLoader)
        assert isinstance(loader.sampler, torch.utils.data.RandomSampler) and loader.batch_size == 4
        trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader)
        SupervisedEvaluator(model, loader, run_on=trainer.n_epoch_completed_ref, metrics=["accuracy"])
        trainer.run()
        assert [c.name for c in state.components] == ["sequential", "sgd"]
        assert state.sequential.module is model and state.sgd.optimizer is optimizer
        assert auto_model(network) is network and len(state.components) == 2  # a second call adds nothing


def test_an_existing_component_is_reused_and_names_can_be_given():
    with State() as state:
        network = torch.nn.Linear(4, 2)
        mine = Model(network, name="net")
        assert auto_model(network) is network
        assert list(state.components) == [mine]
        other = torch.nn.Linear(4, 2)
        auto_model(other, name="teacher")
        sgd = torch.optim.SGD(other.parameters(), lr=0.5)
        registered = Optimizer.of(sgd)
        auto_optim(sgd)
        assert state.teacher.module is other and [c for c in state.components if c.name == "sgd"] == [registered]


def test_bad_input_gets_a_clear_error():
    with State():
        with pytest.raises(TypeError, match="auto_model adapts a torch.nn.Module, got str"):
            auto_model("resnet")
        with pytest.raises(TypeError, match="auto_optim adapts a torch.optim.Optimizer, got Linear"):
            auto_optim(torch.nn.Linear(2, 2))
        with pytest.raises(TypeError, match="auto_dataloader takes a torch.utils.data.Dataset .* got list"):
            auto_dataloader([1, 2, 3], batch_size=2)


def test_any_process_in_one_process_is_the_own_decision():
    assert any_process(True) is True and any_process(False) is False


@pytest.fixture
def group_of_one(tmp_path):
    """A real gloo process group of one process: enough for DistributedDataParallel."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_a_wrapped_model_saves_the_inner_weights_and_loads_into_a_plain_one(group_of_one):
    """No `module.` prefix: a checkpoint of a DDP model loads into a model of one process, and back."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    with State():
        wrapped = Model(torch.nn.parallel.DistributedDataParallel(network), name="net")
        saved = wrapped.state_dict()
    assert sorted(saved["module"]) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    with State():
        plain = Model(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)), name="net")
        plain.load_state_dict(saved)
        for name, weight in network.state_dict().items():
            assert torch.equal(plain.module.state_dict()[name], weight)
        torch.nn.init.zeros_(plain.module[0].weight)
        wrapped.load_state_dict(plain.state_dict())
    assert torch.equal(network[0].weight, torch.zeros(3, 4))
