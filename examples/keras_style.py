"""The classic Keras MNIST program, written with irnet's Python API.

The Keras original:

    model = Sequential([Dense(128, activation="relu", input_shape=(784,)),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, to_categorical(y_train), epochs=10, batch_size=32, validation_split=0.1)
    model.evaluate(x_test, to_categorical(y_test))
    model.save("mnist_model")

Here the network, its loss and its optimiser are `.irn` text (`PROGRAM`, compiled with
`irnet.loads`): the model returns softmax probabilities and the loss is the categorical
cross-entropy of those probabilities against one-hot float targets, with Keras's clipping of the
probabilities to [1e-7, 1 - 1e-7] so that a probability that underflows to 0 gives a large loss
rather than log(0) = -inf (and 0 * -inf = NaN). The labels are one-hot encoded in NumPy, as
`to_categorical` does. Training holds out 10 % of the training set for validation (a random
10 %; Keras takes the last 10 %), then the script measures the test accuracy from
`model.predict` against the test labels and saves the model to a `.npz` checkpoint.

    .venv/bin/python examples/keras_style.py         # the full run: 60,000 images, 10 epochs
    .venv/bin/python examples/keras_style.py --limit 2000 --epochs 1 --save /tmp/m.npz

Measured, the full run on the cpu target (Numba) on 2 CPU cores: test accuracy 97.92 % (seeds 1
to 3, `--seed`: 97.59 to 97.66 %), 7 s of wall time in all, 6 s of it training (0.4 s per epoch
of 1,688 steps); 12 s the first time, when Numba compiles the kernels. On the reference target
(NumPy): 97.71 %, 54 s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import irnet

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "data" / "mnist"

PROGRAM = """
from nn import dense

# Sequential([Dense(128, activation="relu", input_shape=(784,)), Dense(10, activation="softmax")])
model mnist_dense(x: f32[N, 784]) -> f32[N, 10] {
    h = relu(dense(x, 128))
    return softmax(dense(h, 10), axis=1)
}

# Keras's categorical_crossentropy on probabilities: clip them to [eps, 1 - eps], then
# -sum(targets * log(probs)) per example, averaged over the batch.
def categorical_crossentropy(probs: F[N, C], targets: F[N, C], eps: float = 1e-7) -> F {
    p = minimum(maximum(probs, eps), 1.0 - eps)
    return -mean(sum(targets * log(p), axis=1))
}

# compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"]);
# fit(batch_size=32, epochs=10)
train mnist_dense(y: f32[N, 10]) {
    loss      = categorical_crossentropy(mnist_dense(x), y)
    optimizer = adam(lr=0.001)
    batch     = 32
    epochs    = 10
    metrics   = [accuracy]
    seed      = 0
}
"""


def build_model(target: str | None = None, seed: int | None = None) -> irnet.Model:
    """The model of `PROGRAM`, with fresh parameters, on `target` (default: $IRNET_TARGET,
    else auto)."""
    return irnet.loads(PROGRAM, name="keras_style.irn", target=target, seed=seed)


def to_categorical(labels: np.ndarray, classes: int = 10) -> np.ndarray:
    """Integer labels as one-hot float32 rows, as Keras's `to_categorical`."""
    return np.eye(classes, dtype=np.float32)[labels]


def mnist(part: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's `part` ("train" or "test"): images flattened to [N, 784] floats in [0, 1], and
    integer labels; the first `limit` examples if given."""
    images, labels = irnet.load_data("mnist", str(MNIST), part=part)
    images, labels = images[:limit], labels[:limit]
    return images.reshape(len(images), 28 * 28), labels


def main(argv: list[str] | None = None) -> float:
    """Train, evaluate and save as the command line says; the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--limit", type=int, help="train on the first N training images only")
    parser.add_argument("--val-split", type=float, default=0.1, help="default: 0.1")
    parser.add_argument(
        "--save",
        type=Path,
        default=Path("checkpoints/mnist_model.npz"),
        help="the checkpoint to write (default: checkpoints/mnist_model.npz)",
    )
    parser.add_argument("--target", help="reference, cpu, cuda or auto (default: $IRNET_TARGET)")
    parser.add_argument("--seed", type=int, help="initial parameters and shuffles (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress or per-epoch lines")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    x_train, y_train = mnist("train", args.limit)
    x_test, y_test = mnist("test")
    model = build_model(args.target, args.seed)
    print(model)

    fit_start = time.perf_counter()
    history = model.fit(
        x_train,
        to_categorical(y_train),
        epochs=args.epochs,
        batch=args.batch,
        validation_split=args.val_split or None,
        verbose=not args.quiet,
    )
    trained = time.perf_counter() - fit_start

    scores = model.evaluate(x_test, to_categorical(y_test))
    predicted = model.predict(x_test).argmax(axis=1)
    accuracy = float(np.mean(predicted == y_test))
    model.save(args.save)

    print(f"trained {len(history)} epoch(s), {model.step:,} steps of batch {args.batch}")
    print(f"test loss {scores['loss']:.4f}, evaluate() accuracy {scores['accuracy']:.4f}")
    print(f"saved {args.save}")
    print(f"wall time {time.perf_counter() - start:.1f} s (training {trained:.1f} s)")
    print(f"test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
