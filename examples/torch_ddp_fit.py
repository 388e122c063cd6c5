"""One process of a PyTorch DistributedDataParallel run under %%timed_fit, on synthetic data, on CPUs
(gloo) or one GPU per process (nccl). Start it with torchrun; each process records its run in
--history, then

    %fit_history --cluster --history PATH

shows the processes side by side:

    torchrun --standalone --nproc-per-node=2 examples/torch_ddp_fit.py --history runs.jsonl
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import torch
    import torch.distributed as dist

    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        from IPython.core.interactiveshell import InteractiveShell

        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "colab_magic")
        ip.user_ns["EPOCHS"] = args.epochs
        result = ip.run_cell(f"""%%timed_fit -v R --history {args.history}
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
device = f"cuda:{{dist.get_rank() % torch.cuda.device_count()}}" if torch.cuda.is_available() else "cpu"
g = torch.Generator().manual_seed(0)
x = torch.rand(512, 8, generator=g)
data = TensorDataset(x, x.sum(dim=1, keepdim=True))
sampler = DistributedSampler(data)  # each process trains on its share of every epoch
loader = DataLoader(data, batch_size=32, sampler=sampler)
model = DistributedDataParallel(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                                    torch.nn.Linear(16, 1)).to(device))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(EPOCHS):
    sampler.set_epoch(epoch)
    for xb, yb in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(xb.to(device)), yb.to(device)).backward()
        optimizer.step()
""")
        return 0 if result.success else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
