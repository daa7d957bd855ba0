# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Training CLOUD models with `transformers.Trainer` (Accelerate underneath), and publishing them to the Hub.

Commands (each also runs as `python -m modeling_cloud.training.<module>`, so under `torchrun` and
`accelerate launch` too):

* `pretrain` (`pretrain.py`): masked-LM pretraining -> a base checkpoint;
* `finetune` (`finetune.py`): property regression, or K-fold cross-validation with `--cv-folds`;
* `train-debye` (`train_debye.py`): CLOUD-DEBYE on heat capacities;
* `push` (`push.py`): upload a saved checkpoint folder.

`commands.add_training_commands(subparsers, add_command)` registers them on the `cloud-crystal` parser (cheaply: a
command's flags are built when it is chosen). Settings are parsed by `transformers.HfArgumentParser` over CLOUD's
model and data dataclasses and `TrainingArguments` (`options.py`), from a YAML/JSON `--config` file and then the
command line; `launch.py` runs a command and maps failures to exit codes. Data handling is in `data.py`, the Trainer
set-up, checkpoints and resuming in `engine.py`, model loading (folders, Hub ids, the authors' `ChangwenXu/CLOUD`) in
`model_setup.py`, Hub layout and upload in `hub.py`. Ready-made `accelerate` configurations (multi-GPU DDP, FSDP, multi-node) are in `accelerate_configs/`.
"""

from .commands import add_training_commands

__all__ = ["add_training_commands"]
