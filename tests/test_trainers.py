"""Hugging Face's Trainer and Lightning's Trainer under %%timed_fit: each training is one report with the
right steps per epoch, the model's name and the batch size, seen through torch.optim's hooks and the
DataLoader (no code of either library's is patched). Tiny, randomly initialised models; nothing is
downloaded. Not in the Colab-parity run: these need torch, which it goes without (.ci/colab-parity)."""

import pytest

torch = pytest.importorskip("torch")

SETUP = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
'''


def test_hugging_face_trainer_is_one_report_with_its_steps(kip, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    kip.run_cell(f'''
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=64, num_labels=2)
class Tokens(torch.utils.data.Dataset):
    def __len__(self):
        return 96
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {{"input_ids": torch.randint(0, 100, (16,), generator=g), "labels": torch.tensor(i % 2)}}
hf_args = TrainingArguments(output_dir={str(tmp_path)!r}, per_device_train_batch_size=8, num_train_epochs=2,
                            report_to=[], logging_strategy="no", save_strategy="no", use_cpu=True, disable_tqdm=True)
''').raise_error()
    kip.run_cell("%%timed_fit -q -v R --no-history\n"
                 "Trainer(model=BertForSequenceClassification(config), args=hf_args, train_dataset=Tokens()).train()"
                 ).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert (r.loop, r.model, r.batch_size, r.total_steps) == ("torch", "BertForSequenceClassification", 8, 24)
    assert [e.steps for e in r.epochs] == [12, 12]
    assert r.input_wait is not None and r.input_wait.source == "DataLoader"
    assert (r.input_wait.loader.others, r.input_wait.loader.restarts) == (0, 0)  # one loader, passes run through
    assert r.flops_per_step and r.flops_per_step > 0


def test_lightning_trainer_is_one_report_and_validation_starts_no_epoch(kip):
    pytest.importorskip("lightning")
    kip.run_cell('''
import lightning as L
class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    def training_step(self, batch, i):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)
    def validation_step(self, batch, i):
        x, y = batch
        self.log("val", torch.nn.functional.mse_loss(self.net(x), y))
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)
# validation of the same kind and batch size as training: a pass over it must start no epoch
train = DataLoader(TensorDataset(torch.randn(160, 8), torch.randn(160, 1)), batch_size=16)
val = DataLoader(TensorDataset(torch.randn(64, 8), torch.randn(64, 1)), batch_size=16)
trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
''').raise_error()
    kip.run_cell("%%timed_fit -q -v R --no-history\ntrainer.fit(Tiny(), train, val)").raise_error()
    (r,) = kip.user_ns["R"].reports
    # Lightning calls training_step, not the module: its name is found through the module it holds
    assert (r.loop, r.model, r.batch_size, r.total_steps) == ("torch", "Tiny", 16, 30)
    assert [e.steps for e in r.epochs] == [10, 10, 10]
    # the sanity check's and each epoch's validation batches feed no training step, and no pass starts over
    assert (r.input_wait.loader.others, r.input_wait.loader.restarts) == (0, 0)


def test_a_loader_made_anew_each_epoch_is_its_next_epoch_and_a_live_other_loader_is_not(kip):
    """The rule behind both: a pass over another loader of the same kind starts an epoch only once the
    loader that fed the steps is gone."""
    kip.run_cell('''%%timed_fit -q -v R --no-history
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
held = DataLoader(data, batch_size=8)
for epoch in range(3):
    loader = DataLoader(data, batch_size=8, shuffle=True)  # the last epoch's loader is dropped here
    for x, y in loader:
        opt.zero_grad(); torch.nn.functional.mse_loss(model(x), y).backward(); opt.step()
    with torch.no_grad():
        for x, y in held:  # alive the whole time: never an epoch
            model(x)
''').raise_error()
    (r,) = kip.user_ns["R"].reports
    assert [e.steps for e in r.epochs] == [8, 8, 8]
