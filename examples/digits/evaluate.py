"""Score model.pkl on data/test.npz and write metrics.json."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss

METRICS_PATH = Path("metrics.json")


def main() -> None:
    with Path("model.pkl").open("rb") as stream:
        model = pickle.load(stream)
    with np.load("data/test.npz") as data:
        features, labels = data["x"], data["y"]

    predicted = model.predict(features)
    metrics = {
        "test": {
            "acc": round(float(accuracy_score(labels, predicted)), 6),
            "f1": round(float(f1_score(labels, predicted, average="macro")), 6),
            "loss": round(
                float(log_loss(labels, model.predict_proba(features), labels=model.classes_)), 6
            ),
        }
    }
    tmp_path = METRICS_PATH.with_name(METRICS_PATH.name + ".tmp")
    tmp_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp_path.replace(METRICS_PATH)
    print(json.dumps(metrics["test"], sort_keys=True))


if __name__ == "__main__":
    main()
