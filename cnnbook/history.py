"""``History``: what :func:`cnnbook.train.fit` records, epoch by epoch.

Saved with a checkpoint (:func:`cnnbook.checkpoint.save`) as a plain dict of
lists; :meth:`History.plot` draws the loss and accuracy curves (needs the
``plot`` extra: ``pip install 'cnnbook[plot]'``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnbook._optional import require

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch records of a :func:`fit` run (lists of equal length)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Sequence]) -> History:
        return cls(**{k: list(v) for k, v in d.items()})

    def plot(self, axes: Any = None) -> Any:
        """Loss and accuracy curves (train and validation) on two axes.

        Returns the matplotlib Figure.
        """
        plt = require("matplotlib.pyplot", "plot", "History.plot")

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        else:
            fig = axes[0].figure
        ax_loss, ax_acc = axes
        ax_loss.plot(self.epoch, self.train_loss, "o-", label="train")
        ax_acc.plot(self.epoch, [100 * a for a in self.train_acc], "o-", label="train")
        if any(not math.isnan(v) for v in self.val_loss):
            ax_loss.plot(self.epoch, self.val_loss, "s-", label="validation")
            ax_acc.plot(
                self.epoch, [100 * a for a in self.val_acc], "s-", label="validation"
            )
        ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        if not self.epoch:
            return "History(empty)"
        return (
            f"History({len(self)} epochs, last: train loss {self.train_loss[-1]:.4f}, "
            f"train acc {100 * self.train_acc[-1]:.2f}%, val acc "
            f"{100 * self.val_acc[-1]:.2f}%)"
        )
