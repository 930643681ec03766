import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from geo4g.nn import MLP, Trainer


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.05 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


def _trainer(tmp_path=None, model_seed=0, lr=1e-2, device="cpu", **kwargs):
    torch.manual_seed(model_seed)
    model = MLP([4, 32, 32, 1], dropout=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    kwargs.setdefault("scheduler", torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8))
    kwargs.setdefault("max_epochs", 4)
    return Trainer(model, opt, F.mse_loss, checkpoint_dir=tmp_path, device=device, progress=False, **kwargs)


def test_loss_decreases_and_history_is_logged(device):
    ds = _data()
    trainer = _trainer(max_epochs=15, lr=3e-2, seed=0, device=device)
    history = trainer.fit(DataLoader(ds, batch_size=8, shuffle=True), DataLoader(ds, batch_size=16))
    assert [h["epoch"] for h in history] == list(range(1, 16))
    assert history[-1]["train_loss"] < 0.2 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < 0.2 * history[0]["val_loss"]
    assert history[1]["lr"] == pytest.approx(3e-2 * 0.8)


def test_evaluate_reports_dataset_means_of_loss_and_metrics():
    ds = _data(n=13)
    trainer = _trainer(metrics={"mae": lambda p, t: (p - t).abs().mean()})
    logs = trainer.evaluate(DataLoader(ds, batch_size=5))
    x, y = ds.tensors
    with torch.no_grad():
        pred = trainer.model.eval()(x)
    assert set(logs) == {"loss", "mae"}
    assert logs["loss"] == pytest.approx(F.mse_loss(pred, y).item(), rel=1e-5)
    assert logs["mae"] == pytest.approx((pred - y).abs().mean().item(), rel=1e-5)


def test_fit_logs_train_and_val_metrics():
    ds = _data()
    trainer = _trainer(max_epochs=2, metrics={"mae": lambda p, t: (p - t).abs().mean()})
    history = trainer.fit(DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=8))
    assert {"train_loss", "train_mae", "val_loss", "val_mae", "lr"} <= set(history[0])
    assert all(h["val_mae"] > 0 for h in history)


def test_forward_fn_unpacks_custom_batches():
    x, y = _data().tensors
    batches = [{"points": x[i : i + 10], "label": y[i : i + 10]} for i in range(0, 40, 10)]
    trainer = _trainer(max_epochs=3, forward_fn=lambda model, b: (model(b["points"]), b["label"]))
    assert len(trainer.fit(batches)) == 3
    with pytest.raises(TypeError, match="forward_fn"):
        _trainer().fit(batches)


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    ds = _data()
    trainer = _trainer(lr=0.0, max_epochs=20, early_stopping_patience=2, scheduler=None)
    history = trainer.fit(DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=8))
    assert len(history) == 3
    assert trainer.bad_epochs == 2
    assert len(trainer.fit(DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=8))) == 3  # stays stopped


def test_mode_max_monitors_a_metric(tmp_path):
    ds = _data()
    trainer = _trainer(tmp_path, max_epochs=5, lr=3e-2, monitor="val_neg", mode="max", metrics={"neg": lambda p, t: -F.mse_loss(p, t)})
    history = trainer.fit(DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=8))
    assert trainer.best == max(h["val_neg"] for h in history)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["history"][-1]["val_neg"] == trainer.best


def test_checkpoints_written_each_epoch(tmp_path):
    ds = _data()
    trainer = _trainer(tmp_path, max_epochs=3)
    trainer.fit(DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=8))
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 3 and len(last["history"]) == 3
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(last["model"][k], v)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_failing_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    ds = _data()
    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(DataLoader(ds, batch_size=8))
    before = (tmp_path / "last.pt").read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    trainer.max_epochs = 2
    with pytest.raises(OSError, match="disk full"):
        trainer.fit(DataLoader(ds, batch_size=8))
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def _noisy_forward(model, batch):
    """Draws from NumPy and Python's RNGs too, so that resuming must restore them."""
    x, y = batch
    noise = torch.from_numpy(np.random.normal(scale=0.01, size=tuple(x.shape))).float().to(x.device)
    return model(x + noise * random.random()), y


class _Interrupt:
    """A loss that raises KeyboardInterrupt on its ``at``-th call, as a Ctrl-C mid-epoch would."""

    def __init__(self, at):
        self.calls, self.at = 0, at

    def __call__(self, pred, target):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return F.mse_loss(pred, target)


@pytest.mark.parametrize("loader_generator", [True, False])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, loader_generator, device):
    ds = _data()

    def run(ckpt_dir, model_seed=0, loss_fn=F.mse_loss, resume=False, gen_seed=1):
        gen = torch.Generator().manual_seed(gen_seed) if loader_generator else None
        trainer = _trainer(ckpt_dir, model_seed=model_seed, seed=123, forward_fn=_noisy_forward, device=device)
        trainer.loss_fn = loss_fn
        trainer.fit(DataLoader(ds, batch_size=8, shuffle=True, generator=gen), DataLoader(ds, batch_size=20), resume=resume)
        return trainer

    reference = run(tmp_path / "full")
    # 5 train batches + 2 val batches per epoch: the 17th call is the 3rd batch of epoch 3.
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", loss_fn=_Interrupt(at=17))
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 2
    torch.manual_seed(999), np.random.seed(999), random.seed(999)
    resumed = run(tmp_path / "cut", model_seed=7, resume=True, gen_seed=5)

    assert resumed.epoch == 4
    assert resumed.history == reference.history
    for (k, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    ref_opt, res_opt = reference.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(ref_opt[i]["exp_avg"], res_opt[i]["exp_avg"]) for i in ref_opt)


def test_resume_true_without_checkpoint_starts_fresh(tmp_path):
    trainer = _trainer(tmp_path, max_epochs=1)
    assert len(trainer.fit(DataLoader(_data(), batch_size=8), resume=True)) == 1


def test_resume_errors(tmp_path):
    loader = DataLoader(_data(), batch_size=8)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        _trainer().fit(loader, resume=True)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        _trainer().fit(loader, resume=tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*bad.pt"):
        _trainer().fit(loader, resume=tmp_path / "bad.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a geo4g Trainer checkpoint"):
        _trainer().load_checkpoint(tmp_path / "other.pt")
    _trainer(tmp_path / "c", max_epochs=1, scheduler=None).fit(loader)
    with pytest.raises(ValueError, match="holds no scheduler state"):
        _trainer().load_checkpoint(tmp_path / "c" / "last.pt")


def test_grad_clip_bounds_the_update():
    x, y = torch.ones(4, 4), 1e6 * torch.ones(4, 1)
    lin = torch.nn.Linear(4, 1)
    before = torch.cat([p.detach().flatten() for p in lin.parameters()])
    opt = torch.optim.SGD(lin.parameters(), lr=1.0)
    Trainer(lin, opt, F.mse_loss, grad_clip=0.5, max_epochs=1, device="cpu", progress=False).fit([(x, y)])
    after = torch.cat([p.detach().flatten() for p in lin.parameters()])
    assert (after - before).norm().item() == pytest.approx(0.5, rel=1e-4)


def test_non_finite_loss_raises():
    trainer = _trainer(max_epochs=1)
    x, y = _data().tensors
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1, batch 0"):
        trainer.fit([(x, torch.full_like(y, float("nan")))])


def test_progress_bar_and_summary_on_stderr(capsys):
    trainer = _trainer(max_epochs=2)
    trainer.progress = True
    trainer.fit(DataLoader(_data(), batch_size=8))
    err = capsys.readouterr()
    assert "epoch 2/2" in err.err
    assert "train_loss=" in err.out + err.err


@pytest.mark.parametrize(
    "kwargs,arg",
    [
        ({"max_epochs": 0}, "max_epochs"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
        ({"mode": "up"}, "mode"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"scheduler_interval": "step"}, "scheduler_interval"),
        ({"metrics": {"loss": len}}, "metrics"),
    ],
)
def test_bad_trainer_arguments_raise(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        _trainer(**kwargs)


def test_reduce_on_plateau_steps_on_monitored_value():
    model = MLP([4, 1])
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    with pytest.raises(ValueError, match="scheduler_interval must be 'epoch' for ReduceLROnPlateau"):
        Trainer(model, opt, F.mse_loss, scheduler=plateau, scheduler_interval="batch")
    opt.param_groups[0]["lr"] = 1e-12
    trainer = Trainer(model, opt, F.mse_loss, scheduler=plateau, max_epochs=3, device="cpu", progress=False)
    history = trainer.fit(DataLoader(_data(), batch_size=8))
    assert [h["lr"] for h in history] == pytest.approx([1e-12, 1e-12, 0.5e-12])


def test_batch_scheduler_steps_every_batch():
    trainer = _trainer(max_epochs=1, scheduler=None, scheduler_interval="batch")
    trainer.scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    trainer.fit(DataLoader(_data(), batch_size=8))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**5)


def test_unknown_monitor_lists_logged_values():
    with pytest.raises(ValueError, match=r"monitor must be one of the logged values \['train_loss'\], got 'val_loss'"):
        _trainer(monitor="val_loss").fit(DataLoader(_data(), batch_size=8))
