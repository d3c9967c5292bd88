"""Train a linear classifier on data/train.npz epoch by epoch; save model.pkl."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss

import tether

MODEL_PATH = Path("model.pkl")


def main() -> None:
    params = tether.params()["train"]
    seed = int(params["seed"])
    batch_size = int(params["batch_size"])

    with np.load("data/train.npz") as data:
        features, labels = data["x"], data["y"]

    # Hold out a fixed validation slice of the training split for per-epoch feedback;
    # the test split stays untouched until evaluate.py.
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    val_count = round(len(labels) * float(params["val_fraction"]))
    val_idx, fit_idx = order[:val_count], order[val_count:]
    x_fit, y_fit = features[fit_idx], labels[fit_idx]
    x_val, y_val = features[val_idx], labels[val_idx]
    classes = np.unique(labels)

    model = SGDClassifier(
        loss="log_loss",
        learning_rate="constant",
        eta0=float(params["lr"]),
        alpha=float(params["alpha"]),
        random_state=seed,
    )
    for epoch in range(1, int(params["epochs"]) + 1):
        epoch_order = rng.permutation(len(y_fit))
        for start in range(0, len(epoch_order), batch_size):
            batch = epoch_order[start : start + batch_size]
            model.partial_fit(x_fit[batch], y_fit[batch], classes=classes)
        train_loss = log_loss(y_fit, model.predict_proba(x_fit), labels=classes)
        train_acc = accuracy_score(y_fit, model.predict(x_fit))
        val_acc = accuracy_score(y_val, model.predict(x_val))
        tether.log(
            step=epoch,
            loss=round(float(train_loss), 6),
            train_acc=round(float(train_acc), 6),
            val_acc=round(float(val_acc), 6),
        )
        print(
            f"epoch {epoch:3d}  loss {train_loss:.4f}  "
            f"train_acc {train_acc:.4f}  val_acc {val_acc:.4f}"
        )

    tmp_path = MODEL_PATH.with_name(MODEL_PATH.name + ".tmp")
    with tmp_path.open("wb") as stream:
        pickle.dump(model, stream, protocol=pickle.HIGHEST_PROTOCOL)
    tmp_path.replace(MODEL_PATH)


if __name__ == "__main__":
    main()
