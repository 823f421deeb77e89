"""SteerLM (survey, "SteerLM"; Dong et al. 2023): attribute-conditioned SFT. Built so far: the
attribute prediction model (``method: attributes``, ``synth_ray.train.attribute_trainer``), its
scorer (``synth_ray.engines.reward_model.AttributeScorer``) and the attribute conditioning
(``conditioning``); the conditioned SFT and the bootstrapping loop come next."""
