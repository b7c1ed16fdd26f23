"""The devices' optimizers (edgefleet/tasks/optim.py)."""

import numpy as np
import pytest

from edgefleet.tasks import federated_task
from edgefleet.tasks.optim import SGD, Adam, local_optimizer, optimizer_name, state_copies, task_lr


def test_one_adam_step_is_the_gradients_sign_and_one_sgd_step_keeps_its_size():
    """Why sim.local_optimizer offers SGD: a device with one step a round sends lr x sign(gradient) with Adam, the
    same norm for a tiny gradient as for a large one."""
    g = {"w": np.array([1e-4, -3.0, 0.5], dtype=np.float32)}
    adam, sgd = {"w": np.zeros(3, dtype=np.float32)}, {"w": np.zeros(3, dtype=np.float32)}
    Adam(adam, 0.01).step(adam, g)
    SGD(sgd, 0.01).step(sgd, g)
    np.testing.assert_allclose(adam["w"], -0.01 * np.sign(g["w"]), rtol=1e-3)
    np.testing.assert_allclose(sgd["w"], -0.01 * g["w"])


def test_the_configured_optimizer_its_state_and_the_tasks_own_rates():
    params = {"w": np.ones(2, dtype=np.float32)}
    assert isinstance(local_optimizer("adam", params, 0.1), Adam)
    assert isinstance(local_optimizer("sgd", params, 0.1), SGD)
    assert (state_copies("adam"), state_copies("sgd")) == (2, 0)
    own = {"lr": 1e-3, "sgd_lr": 0.3, "personal_lr": 0.5}
    assert (task_lr(own, "adam"), task_lr(own, "sgd")) == (1e-3, 0.3)
    with pytest.raises(KeyError):
        local_optimizer("lion", params, 0.1)
    textclf = federated_task("textclf")
    assert (optimizer_name(None, textclf), optimizer_name("adam", textclf)) == ("sgd", "adam")
    assert optimizer_name(None, federated_task("movielens")) == "adam"
