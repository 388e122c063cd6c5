"""The article's CIFAR-10 CNN (Conv2D 32-64-64, Dense 64, 10), as source for the benchmarks' IPython
cells: one definition for bench/overhead.py, bench/compare.py and bench/gpu_check.py; and the synthetic data
that bench/compare.py, bench/epoch_start.py and bench/whatif_budget.py train it on."""

CIFAR_CNN = '''
import numpy as np, keras

def cifar_cnn(metrics=("accuracy",)):
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=list(metrics))
    return model
'''


# Synthetic CIFAR-sized data (CIFAR-10 cannot be downloaded on these machines): a cell, ``.format(samples=N)``.
CIFAR_DATA = '''
rng = np.random.default_rng(0)
x = rng.random(({samples}, 32, 32, 3), dtype=np.float32)
y = rng.integers(0, 10, {samples})
'''
