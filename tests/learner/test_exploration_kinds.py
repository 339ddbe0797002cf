"""Boltzmann and MaxBoltzmann exploration, the temperature schedule, eval_epsilon and dueling aggregations."""
import numpy as np
import pytest
import torch

from dqnkit.api import DQN
from dqnkit.config import Config
from dqnkit.errors import ConfigError
from dqnkit.learner.explore import boltzmann, max_boltzmann
from dqnkit.networks.batched import BatchedQNetwork
from dqnkit.networks.qnet import QNetwork
from dqnkit.training.trainer import Trainer

CHI2_P001 = {2: 13.82, 3: 16.27}  # chi-square quantiles at p = 0.001 by degrees of freedom


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def chi2(counts, probs):
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_boltzmann_frequencies_match_softmax(temperature):
    q_row = np.array([1.0, 2.0, 0.5, 1.5])
    n = 40_000
    actions = boltzmann(np.tile(q_row, (n, 1)), temperature, np.random.default_rng(0))
    counts = np.bincount(actions, minlength=4)
    assert chi2(counts, softmax(q_row / temperature)) < CHI2_P001[3]
    # the test can fail: the frequencies of another temperature are far off
    assert chi2(counts, softmax(q_row / (temperature * 3))) > 100


def test_boltzmann_with_a_mask_is_softmax_over_the_allowed_actions():
    q_row = np.array([1.0, 9.0, 0.5, 1.5])
    mask = np.tile([True, False, True, True], (30_000, 1))
    actions = boltzmann(np.tile(q_row, (30_000, 1)), 1.0, np.random.default_rng(1), mask)
    counts = np.bincount(actions, minlength=4)
    assert counts[1] == 0
    assert chi2(counts[[0, 2, 3]], softmax(q_row[[0, 2, 3]])) < CHI2_P001[2]


def test_boltzmann_handles_large_q_over_small_temperature():
    q = np.array([[1000.0, 999.0, -1000.0]])
    assert boltzmann(q, 0.01, np.random.default_rng(0))[0] == 0


def test_max_boltzmann_greedy_share_is_about_one_minus_epsilon():
    q_row = np.array([0.0, 3.0, 1.0])  # greedy: action 1
    n, eps, temperature = 40_000, 0.3, 1.0
    actions = max_boltzmann(np.tile(q_row, (n, 1)), eps, temperature, np.random.default_rng(2))
    p = softmax(q_row / temperature)
    expected = (1 - eps) + eps * p[1]  # greedy, or a Boltzmann draw that happens to be the greedy action
    share = (actions == 1).mean()
    assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    # the non-greedy actions come in Boltzmann's proportions
    others = np.bincount(actions[actions != 1], minlength=3)[[0, 2]]
    assert chi2(others, p[[0, 2]] / p[[0, 2]].sum()) < 10.83  # 1 dof
    assert (max_boltzmann(np.tile(q_row, (100, 1)), 0.0, 1.0, np.random.default_rng(0)) == 1).all()


def test_temperature_schedule_values():
    cfg = Config.from_dict({"total_timesteps": 1000, "exploration": "boltzmann", "exploration_fraction": 0.5,
                            "exploration_initial_temperature": 2.0, "exploration_final_temperature": 0.2,
                            "policy_kwargs": {"net_arch": [8]}})
    t = Trainer(cfg, None, verbosity="quiet")
    values = []
    for step in (0, 250, 500, 900):
        t.env_step = step
        values.append(t.temperature())
    assert values == pytest.approx([2.0, 1.1, 0.2, 0.2])
    assert t.epsilon() == 0.0  # boltzmann has no epsilon
    t.close()


@pytest.mark.parametrize("kind", ["boltzmann", "max_boltzmann"])
def test_boltzmann_training_runs_and_is_seeded(kind):
    cfg = dict(total_timesteps=600, exploration=kind, learning_starts=100, eval_freq=0, eval_episodes=2,
               policy_kwargs={"net_arch": [16]}, exploration_initial_temperature=5.0, tensorboard=False)
    runs = []
    for _ in range(2):
        t = Trainer(Config.from_dict(cfg), None, verbosity="quiet")
        t.learn()
        runs.append((t.episodes, t.agent.q_values(np.zeros((1, 4), np.float32)).tolist()))
        t.close()
    assert runs[0] == runs[1] and runs[0][0] > 5


def test_noisy_with_boltzmann_is_refused():
    with pytest.raises(ConfigError, match="noisy=true explores by its noise"):
        Config.from_dict({"noisy": True, "exploration": "boltzmann"})


def test_eval_epsilon_changes_eval_actions_reproducibly():
    model = DQN("CartPole-v1", verbose=0, total_timesteps=100, policy_kwargs={"net_arch": [8]})
    greedy = model.evaluate(8, seed=3)
    noisy_a = model.evaluate(8, seed=3, epsilon=0.5)
    noisy_b = model.evaluate(8, seed=3, epsilon=0.5)
    assert noisy_a["returns"] == noisy_b["returns"]
    assert noisy_a["returns"] != greedy["returns"]
    assert model.evaluate(8, seed=4, epsilon=0.5)["returns"] != noisy_a["returns"]
    with pytest.raises(ConfigError, match=r"epsilon must be in \[0, 1\]"):
        model.evaluate(2, epsilon=1.5)
    model.close()


def test_periodic_evaluation_uses_eval_epsilon():
    base = dict(total_timesteps=200, eval_freq=200, eval_episodes=6, learning_starts=1000,
                policy_kwargs={"net_arch": [8]}, tensorboard=False)
    t = Trainer(Config.from_dict({**base, "eval_epsilon": 0.5}), None, verbosity="quiet")
    t.learn()
    assert t.last_eval["returns"] == t.evaluate()["returns"]  # the same seeded episodes
    assert t.last_eval["returns"] != t.evaluate(epsilon=0.0)["returns"]
    t.close()


def test_cli_eval_epsilon(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--steps", "300", "--out", run, "--quiet", "--set", "learning_starts=100",
            "--set", "eval_episodes=2", "--set", "tensorboard=false", "--set", "policy_kwargs={net_arch: [8]}")
    assert r.returncode == 0, r.stderr
    import json
    outs = [json.loads(cli("eval", run, "--episodes", "6", "--json", *extra).stdout)["returns"]
            for extra in ([], ["--epsilon", "0.5"], ["--epsilon", "0.5"])]
    assert outs[1] == outs[2] and outs[1] != outs[0]


def _dueling_net(how, distributional=False):
    torch.manual_seed(0)
    return QNetwork((3,), 4, net_arch=[8], dueling=True, dueling_aggregation=how, distributional=distributional,
                    n_atoms=5, v_min=-1, v_max=1)


@pytest.mark.parametrize("how", ["mean", "max", "naive"])
def test_dueling_aggregations_against_a_hand_computed_oracle(how):
    net = _dueling_net(how)
    obs = torch.randn(6, 3)
    with torch.no_grad():
        h = net.torso(obs).numpy()
        w_a, b_a = net.advantage[-1].weight.numpy(), net.advantage[-1].bias.numpy()
        w_v, b_v = net.value[-1].weight.numpy(), net.value[-1].bias.numpy()
        q = net(obs).numpy()
    adv = h @ w_a.T + b_a
    val = h @ w_v.T + b_v  # (6, 1)
    centre = {"mean": adv.mean(1, keepdims=True), "max": adv.max(1, keepdims=True), "naive": 0.0}[how]
    np.testing.assert_allclose(q, val + adv - centre, rtol=1e-5, atol=1e-6)
    if how == "max":  # eq. 8: the greedy action's Q is V
        np.testing.assert_allclose(q.max(1), val[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("how", ["mean", "max", "naive"])
@pytest.mark.parametrize("distributional", [False, True])
def test_batched_dueling_aggregation_equals_each_member(how, distributional):
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(QNetwork((3,), 4, net_arch=[8], dueling=True, dueling_aggregation=how,
                             distributional=distributional, n_atoms=5, v_min=-1, v_max=1))
    batched = BatchedQNetwork(nets)
    obs = torch.randn(2, 5, 3)
    with torch.no_grad():
        out = batched(obs)
        for m, net in enumerate(nets):
            torch.testing.assert_close(out[m], net(obs[m]), rtol=1e-5, atol=1e-6)


def test_population_refuses_boltzmann_and_eval_epsilon():
    for extra in ({"exploration": "boltzmann"}, {"exploration": "max_boltzmann"}, {"eval_epsilon": 0.05}):
        with pytest.raises(ConfigError, match="population mode explores epsilon-greedily"):
            DQN.population("CartPole-v1", seeds=[0, 1], total_timesteps=100, **extra).learn()


def test_population_trains_a_max_dueling_group():
    out = DQN.population("CartPole-v1", seeds=[0, 1], total_timesteps=300, learning_starts=100, eval_episodes=2,
                         dueling=True, dueling_aggregation="max", policy_kwargs={"net_arch": [8]}).learn()
    assert len(out) == 2 and all(m["last_eval"] is not None for m in out)
