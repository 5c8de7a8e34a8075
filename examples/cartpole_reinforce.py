"""REINFORCE (Williams 1992) on gymnasium's CartPole-v1, with the policy compiled by irnet.

The policy is `examples/rl/cartpole_policy.irn`: an MLP from the 4 observations to 2 action
logits, and a train block whose loss is the policy-gradient loss -mean(g * log pi(a | s)).
This script plays one episode at a time, drawing each action from softmax(policy(obs)) with
the compiled model, then takes one Adam step (`model.train_step`) on the whole episode: its
states, its actions (one-hot) and its discounted returns (gamma 0.99), normalised to mean 0 and
standard deviation 1, which serves as the baseline. Every random choice is seeded (`--seed`):
the environment, the action draws and irnet's initial parameters, so a run repeats exactly.

    .venv/bin/python examples/cartpole_reinforce.py            # 1000 episodes, seed 0

CartPole counts as solved when the mean return over 100 consecutive episodes reaches 195. With
the defaults (the cpu target, 2 AMD EPYC cores) the mean of the last 100 first reaches 195 at
episode 185 and is 411.9 over episodes 901-1000; the run takes 8 s with irnet's compile cache
warm, 12 s cold. Seeds 1 to 7 solve it too, between episodes 129 and 200.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

import irnet

POLICY = Path(__file__).resolve().parent / "rl" / "cartpole_policy.irn"
GAMMA = 0.99
SOLVED = 195.0


def discounted_returns(rewards: Sequence[float], gamma: float = GAMMA) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1}, normalised to mean 0 and standard deviation 1."""
    returns = np.zeros(len(rewards), np.float32)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        returns[t] = running
    return (returns - returns.mean()) / (returns.std() + 1e-8)


def train(
    episodes: int = 1000,
    seed: int = 0,
    target: str = "auto",
    lr: float | None = None,
    log_every: int = 50,
) -> tuple[irnet.Model, list[float]]:
    """Train the policy for `episodes` episodes (Adam at `lr`, by default the train block's);
    the model and each episode's return."""
    model = irnet.load(POLICY, seed=seed, target=target, lr=lr)
    policy = model.compile()
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    onehot = np.eye(2, dtype=np.float32)
    returns: list[float] = []
    for episode in range(1, episodes + 1):
        obs, _ = env.reset(seed=seed if episode == 1 else None)
        states, actions, rewards = [], [], []
        done = False
        while not done:
            logits = policy(obs.reshape(1, 4))[0]
            p_right = 1.0 / (1.0 + np.exp(logits[0] - logits[1]))  # softmax over two actions
            action = int(rng.random() < p_right)
            states.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        model.train_step(np.stack(states), onehot[actions], discounted_returns(rewards))
        returns.append(sum(rewards))
        if log_every and episode % log_every == 0:
            recent = np.mean(returns[-100:])
            print(
                f"episode {episode:5d}  return {returns[-1]:6.1f}  mean of last 100 {recent:6.1f}"
            )
    env.close()
    return model, returns


def solved_at(returns: Sequence[float], window: int = 100) -> int | None:
    """The first episode at which the mean of the last `window` returns reached SOLVED."""
    totals = np.cumsum(np.concatenate([[0.0], returns]))
    means = (totals[window:] - totals[:-window]) / window  # means[i]: episodes i+1 to i+window
    reached = np.flatnonzero(means >= SOLVED)
    return int(reached[0]) + window if reached.size else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", default="auto", help="reference, cpu, cuda or auto")
    parser.add_argument("--lr", type=float, help="Adam's learning rate (default: the .irn's)")
    parser.add_argument("--save", type=Path, help="write the trained policy's checkpoint here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    model, returns = train(args.episodes, args.seed, args.target, args.lr)
    seconds = time.perf_counter() - start
    print(f"mean return over the last 100 episodes: {np.mean(returns[-100:]):.1f}")
    episode = solved_at(returns)
    print(f"solved (mean of 100 >= {SOLVED:g}) at episode {episode}" if episode else "not solved")
    print(f"{len(returns)} episodes in {seconds:.1f} s")
    if args.save:
        model.save(args.save)
        print(f"saved {args.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
