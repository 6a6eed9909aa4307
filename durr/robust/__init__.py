"""Adversarial robustness: PGD-k attacks and training, YOPO-m-n (training via the maximum principle).

* :func:`pgd_attack`: generic L-infinity PGD-k on any differentiable ``model_fn`` and loss;
  :func:`restoration_attack` for restorers (perturb the degraded scan to maximise the error).
* :func:`yopo_step`: one YOPO-m-n minibatch step.
* :func:`train_classifier`, :func:`robust_accuracy`, :func:`run_digits`: the digits experiment.
"""

from durr.robust.attacks import classification_loss, pgd_attack, restoration_attack
from durr.robust.training import (AdvConfig, accuracy, load_digits_tensors, robust_accuracy, run_digits,
                                  train_classifier)
from durr.robust.yopo import yopo_step

__all__ = ["pgd_attack", "restoration_attack", "classification_loss", "yopo_step", "AdvConfig",
           "train_classifier", "accuracy", "robust_accuracy", "load_digits_tensors", "run_digits"]
