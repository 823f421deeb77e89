"""Training on Ray Train (the layer above the generation methods): each trainer is a Ray Train
``TorchTrainer`` job reading the generation jobs' outputs through Ray Data.

Importing this package registers the training methods (``sft``, ``pretrain``, ``dpo``, ``reward``, ``attributes``). Configs sit beside their
trainers (``sft_config.py`` / ``sft_trainer.py``); ``base.py`` holds scaling, checkpoints and
failures, ``data.py`` the tokenization stage, ``hf_worker.py`` the inside of a worker.
"""

from synth_ray.train import attribute_trainer as _attributes  # noqa: F401  (registers "attributes")
from synth_ray.train import dpo_trainer as _dpo  # noqa: F401  (registers "dpo")
from synth_ray.train import pretrain_trainer as _pretrain  # noqa: F401  (registers "pretrain")
from synth_ray.train import reward_trainer as _reward  # noqa: F401  (registers "reward")
from synth_ray.train import sft_trainer as _sft  # noqa: F401  (registers "sft")
