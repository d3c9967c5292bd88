"""Split scikit-learn's bundled digits data set into data/train.npz and data/test.npz."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import tether

DATA_DIR = Path("data")
# A fixed member timestamp keeps the .npz files byte-identical between runs, so
# their hashes (and everything downstream of them) change only when the data does.
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz_deterministic(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays as an .npz archive whose bytes depend only on the arrays."""
    tmp_path = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp_path, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in sorted(arrays.items()):
            member = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, mode="w", force_zip64=True) as stream:
                npy_format.write_array(stream, np.ascontiguousarray(array), allow_pickle=False)
    tmp_path.replace(path)


def main() -> None:
    params = tether.params()["prepare"]
    digits = load_digits()
    # Pixel intensities are 0..16; scale them to 0..1 so a plain SGD step size works.
    features = (digits.data / 16.0).astype(np.float64)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        labels,
        test_size=float(params["test_size"]),
        random_state=int(params["seed"]),
        stratify=labels,
    )
    DATA_DIR.mkdir(exist_ok=True)
    save_npz_deterministic(DATA_DIR / "train.npz", x=x_train, y=y_train)
    save_npz_deterministic(DATA_DIR / "test.npz", x=x_test, y=y_test)
    print(f"prepare: {len(y_train)} train rows, {len(y_test)} test rows")


if __name__ == "__main__":
    main()
