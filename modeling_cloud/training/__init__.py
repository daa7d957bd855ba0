# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Training CLOUD models with `transformers.Trainer` (Accelerate underneath), and publishing them to the Hub.

Commands (each also runs as `python -m modeling_cloud.training.<module>`, so under `torchrun` and
`accelerate launch` too):

* `pretrain` (`pretrain.py`): masked-LM pretraining -> a base checkpoint;
* `finetune` (`finetune.py`): property regression, or K-fold cross-validation with `--cv-folds`;
* `train-debye` (`train_debye.py`): CLOUD-DEBYE on heat capacities;
* `push` (`push.py`): upload a saved checkpoint folder.

`commands.add_training_commands(subparsers, add_command)` registers them on the `cloud-crystal` parser. Settings come
from a YAML/JSON `--config` file plus command-line overrides (`options.py`); data handling is in `data.py`, the
Trainer set-up, checkpoints and resuming in `engine.py`, model loading in `model_setup.py`, Hub layout and upload
in `hub.py`. Ready-made `accelerate` configurations (multi-GPU DDP, FSDP, multi-node) are in `accelerate_configs/`.
"""

from .commands import add_training_commands

__all__ = ["add_training_commands"]
