"""One process of a multi-process training run under %%timed_fit: Keras' distribution API on JAX
(DataParallel over every process's devices), on synthetic data. Start several with
examples/launch_local.py; each records its run in --history, then

    %fit_history --cluster --history PATH

shows the processes side by side. On several machines, set the three COLAB_MAGIC_* variables on each
(the coordinator is process 0's address) and point --history at a shared file system.
"""

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import jax

    if os.environ["JAX_PLATFORMS"] == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives between processes
    import keras

    keras.distribution.initialize(job_addresses=os.environ["COLAB_MAGIC_COORDINATOR"],
                                  num_processes=int(os.environ["COLAB_MAGIC_NUM_PROCESSES"]),
                                  process_id=int(os.environ["COLAB_MAGIC_PROCESS_ID"]))
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.user_ns["EPOCHS"] = args.epochs
    # multi-process auto-sharding needs a tf.data input: each process reads its share of every batch
    result = ip.run_cell(f"""%%timed_fit -v R --history {args.history}
import numpy as np, keras, tensorflow as tf
x = np.random.default_rng(0).random((256, 8), dtype=np.float32)
y = x.sum(axis=1, keepdims=True)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
history = model.fit(data, epochs=EPOCHS, verbose=0)
""")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
