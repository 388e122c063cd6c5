"""What a batch from a DataLoader worker process costs the training process, against a batch made in it.

Run: python bench/loader_handoff.py [--batches 300]

Why: the PyTorch input-bound verdict names ``num_workers`` only where it can help. A worker makes the
batch in another process, but the training process still receives it (a queue, the tensors' shared
memory mapped back in, the batch rebuilt) and, when the loop lets go of it, releases that shared memory;
where making a batch in the training process takes less than that, workers add to each step's time
instead of taking it away. colab_magic.verdicts' ``WORKER_HANDOFF_S`` is the least of that cost (the
two together) measured here.

The two are timed apart: ``%%timed_fit`` measures the first (inside ``__next__``) as the input wait; the
second happens when the loop's variable takes the next batch, after ``__next__`` has returned, and is
counted in the step.

CIFAR-sized images held in memory (``__getitem__`` is an index, no decoding), batch 16, 32 and 128;
after each batch the loop spins for a "step" of 0.5 or 5 ms (so the workers have time to have the next
batch ready); the mean time inside ``__next__`` per batch over --batches batches after a pass of
warm-up, with 0, 1 and 2 workers (``persistent_workers``). One thread for torch. Last, the fix the
verdict gives a ``TensorDataset`` instead of workers: whole batches taken at once (a ``BatchSampler``
and ``batch_size=None``) against sample by sample, the same batch shapes.
"""

import argparse
import time

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset


class Images(Dataset):
    """CIFAR-sized images in memory: a batch costs only its indexing and collation."""

    def __init__(self, n: int) -> None:
        self.x, self.y = torch.rand(n, 3, 32, 32), torch.randint(0, 10, (n,))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def wait_per_batch(batch: int, step_s: float, batches: int, workers: int) -> tuple[float, float]:
    """Mean seconds per batch inside ``__next__``, and releasing the batch after the step, over the second
    pass (the first warms the workers up)."""
    loader = DataLoader(Images(batch * batches), batch_size=batch, num_workers=workers,
                        persistent_workers=workers > 0)
    for _ in range(2):
        waited, released, n = 0.0, 0.0, 0
        it = iter(loader)
        while True:
            start = time.perf_counter()
            try:
                got = next(it)
            except StopIteration:
                break
            waited += time.perf_counter() - start
            n += 1
            until = time.perf_counter() + step_s
            while time.perf_counter() < until:  # the step: the main process busy, as training keeps it
                pass
            start = time.perf_counter()
            del got  # what rebinding the loop's variable does (the last reference: freed here)
            released += time.perf_counter() - start
    return waited / n, released / n


def per_batch(loader: DataLoader) -> tuple[float, tuple]:
    """Mean seconds a batch over the second of two passes, and the last batch's shapes."""
    for _ in range(2):
        start, n = time.perf_counter(), 0
        for batch in loader:
            n += 1
        took = time.perf_counter() - start
    return took / n, tuple(tuple(t.shape) for t in batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}; mean time per batch inside DataLoader.__next__ + releasing the batch "
          f"after its step, {args.batches} batches, images held in memory")
    least_handoff = float("inf")
    for batch in (16, 32, 128):
        for step_s in (0.0005, 0.005):
            costs = {w: wait_per_batch(batch, step_s, args.batches, w) for w in (0, 1, 2)}
            least_handoff = min(least_handoff, sum(costs[1]), sum(costs[2]))
            print(f"batch {batch:>3}, step {1000 * step_s:.1f} ms: " + ", ".join(
                f"{w} workers {1e6 * got:,.0f} + {1e6 * gone:,.0f} us" for w, (got, gone) in costs.items()), flush=True)
    print(f"least cost of a worker's batch (both parts): {1e6 * least_handoff:,.0f} us")
    data = TensorDataset(torch.randn(16_000, 8), torch.randn(16_000, 1))
    one_by_one = per_batch(DataLoader(data, batch_size=16, shuffle=True))
    whole = per_batch(DataLoader(data, sampler=BatchSampler(RandomSampler(data), 16, False), batch_size=None))
    assert one_by_one[1] == whole[1], (one_by_one[1], whole[1])
    print(f"TensorDataset, batch 16, shapes {whole[1]}: sample by sample {1e6 * one_by_one[0]:.1f} us a batch, "
          f"whole batches {1e6 * whole[0]:.1f} us")


if __name__ == "__main__":
    main()
