#!/usr/bin/python3
"""Golden schedules and loops for tests/test_schedulers.c.

diffusers is not installable on this machine, so this script replicates the
arithmetic of diffusers' schedulers (src/diffusers/schedulers/, version
0.40.0.dev0, commit 58eb52c080: scheduling_euler_discrete.py,
scheduling_euler_ancestral_discrete.py, scheduling_ddim.py,
scheduling_dpmsolver_multistep.py) with numpy float64 where diffusers uses
numpy and torch float32 tensors where diffusers uses torch, and the loops of
diffusers' tests/schedulers/ (SchedulerCommonTest's dummy_sample_deter,
dummy_noise_deter and dummy_model). Before printing anything it checks that
the replica reproduces the figures of the upstream tests it mirrors.

Run with Debian's PyTorch 1.13 under Debian's python3:

    /usr/bin/python3 tests/golden/scheduler_golden.py > /tmp/scheduler_golden.inc

and paste the output between the GOLDEN markers of tests/test_schedulers.c.
"""
import math

import numpy as np
import torch

assert torch.__version__.startswith("1.13"), torch.__version__


# ---- the training schedule -------------------------------------------------

def make_betas(cfg):
    n, b0, b1 = cfg["num_train_timesteps"], cfg["beta_start"], cfg["beta_end"]
    sched = cfg["beta_schedule"]
    if sched == "linear":
        return torch.linspace(b0, b1, n, dtype=torch.float32)
    if sched == "scaled_linear":
        return torch.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=torch.float32) ** 2
    if sched == "squaredcos_cap_v2":
        def abar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        return torch.tensor([min(1 - abar((i + 1) / n) / abar(i / n), 0.999) for i in range(n)],
                            dtype=torch.float32)
    raise ValueError(sched)


DEFAULTS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                prediction_type="epsilon", timestep_spacing="linspace", steps_offset=0,
                use_karras_sigmas=False, final_sigmas_type="zero", set_alpha_to_one=True, clip_sample=True,
                clip_sample_range=1.0, thresholding=False, dynamic_thresholding_ratio=0.995,
                sample_max_value=1.0, solver_order=2, algorithm_type="dpmsolver++", solver_type="midpoint",
                lower_order_final=True, euler_at_final=False)


def sigma_to_t(sigma, log_sigmas):
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low_idx = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = np.clip((low - log_sigma) / (low - high), 0, 1)
    return ((1 - w) * low_idx + w * high_idx).reshape(sigma.shape)


def karras(in_sigmas, n):
    sigma_min, sigma_max = in_sigmas[-1].item(), in_sigmas[0].item()
    ramp = np.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / 7.0), sigma_max ** (1 / 7.0)
    return (hi + ramp * (lo - hi)) ** 7.0


class Sched:
    def __init__(self, kind, **kw):
        self.kind = kind
        c = dict(DEFAULTS)
        if kind == "ddim":
            c["timestep_spacing"] = "leading"
        c.update(kw)
        self.c = c
        self.betas = make_betas(c)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if c["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.step_index = None
        self.begin_index = None
        self.model_outputs = [None] * c["solver_order"]
        self.lower_order_nums = 0
        self.eta = 0.0

    # set_timesteps of each scheduler
    def set_timesteps(self, n):
        c, N = self.c, self.c["num_train_timesteps"]
        sp = c["timestep_spacing"]
        acp = self.alphas_cumprod
        self.n_req = n
        if self.kind in ("euler", "euler_a"):
            if sp == "linspace":
                ts = np.linspace(0, N - 1, n, dtype=np.float32)[::-1].copy()
            elif sp == "leading":
                ts = (np.arange(0, n) * (N // n)).round()[::-1].copy().astype(np.float32)
                ts += c["steps_offset"]
            else:
                ts = np.arange(N, 0, -(N / n)).round().copy().astype(np.float32)
                ts -= 1
            sig = np.array(((1 - acp) / acp) ** 0.5)
            log_sigmas = np.log(sig)
            sig = np.interp(ts, np.arange(0, len(sig)), sig)
            if self.kind == "euler" and c["use_karras_sigmas"]:
                sig = karras(sig, n)
                ts = np.array([sigma_to_t(s, log_sigmas) for s in sig])
            if self.kind == "euler" and c["final_sigmas_type"] == "sigma_min":
                last = ((1 - acp[0]) / acp[0]) ** 0.5
            else:
                last = 0
            self.sigmas = torch.from_numpy(np.concatenate([sig, [last]]).astype(np.float32))
            self.timesteps = torch.from_numpy(ts.astype(np.float32))
            mx = self.sigmas.max()
            self.init_noise_sigma = mx if sp in ("linspace", "trailing") else (mx ** 2 + 1) ** 0.5
        elif self.kind == "ddim":
            if sp == "linspace":
                ts = np.linspace(0, N - 1, n).round()[::-1].copy().astype(np.int64)
            elif sp == "leading":
                ts = (np.arange(0, n) * (N // n)).round()[::-1].copy().astype(np.int64)
                ts += c["steps_offset"]
            else:
                ts = np.round(np.arange(N, 0, -(N / n))).astype(np.int64)
                ts -= 1
            self.timesteps = torch.from_numpy(ts)
            self.sigmas = None
            self.init_noise_sigma = 1.0
        else:
            last = N
            if sp == "linspace":
                ts = np.linspace(0, last - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
            elif sp == "leading":
                ts = (np.arange(0, n + 1) * (last // (n + 1))).round()[::-1][:-1].copy().astype(np.int64)
                ts += c["steps_offset"]
            else:
                ts = np.arange(last, 0, -(N / n)).round().copy().astype(np.int64)
                ts -= 1
            sig = np.array(((1 - acp) / acp) ** 0.5)
            log_sigmas = np.log(sig)
            if c["use_karras_sigmas"]:
                sig = np.flip(sig).copy()
                sig = karras(sig, n)
                ts = np.array([sigma_to_t(s, log_sigmas) for s in sig])
                if c["beta_schedule"] != "squaredcos_cap_v2":
                    ts = ts.round()
            else:
                sig = np.interp(ts, np.arange(0, len(sig)), sig)
            last_s = ((1 - acp[0]) / acp[0]) ** 0.5 if c["final_sigmas_type"] == "sigma_min" else 0
            self.sigmas = torch.from_numpy(np.concatenate([sig, [last_s]]).astype(np.float32))
            self.timesteps = torch.from_numpy(ts).to(dtype=torch.int64)
            self.init_noise_sigma = 1.0
        self.num_inference_steps = len(self.timesteps)
        self.step_index = None
        self.begin_index = None
        self.model_outputs = [None] * c["solver_order"]
        self.lower_order_nums = 0

    def index_for_timestep(self, t):
        idx = (self.timesteps == t).nonzero()
        if self.kind == "dpm":
            if len(idx) == 0:
                return len(self.timesteps) - 1
        return idx[1 if len(idx) > 1 else 0].item()

    def init_step_index(self, t):
        if self.step_index is None:
            self.step_index = self.index_for_timestep(t) if self.begin_index is None else self.begin_index

    def scale_model_input(self, sample, t):
        if self.kind not in ("euler", "euler_a"):
            return sample
        self.init_step_index(t)
        sigma = self.sigmas[self.step_index]
        return sample / ((sigma ** 2 + 1) ** 0.5)

    def threshold(self, sample):
        b, ch, *rest = sample.shape
        sample = sample.reshape(b, ch * int(np.prod(rest)))
        s = torch.quantile(sample.abs(), self.c["dynamic_thresholding_ratio"], dim=1)
        s = torch.clamp(s, min=1, max=self.c["sample_max_value"]).unsqueeze(1)
        return (torch.clamp(sample, -s, s) / s).reshape(b, ch, *rest)

    def step(self, m, t, x, generator=None):
        pt = self.c["prediction_type"]
        if self.kind == "euler":
            self.init_step_index(t)
            sigma = self.sigmas[self.step_index]
            sigma_hat = sigma * (0.0 + 1)
            if pt == "sample":
                p = m
            elif pt == "epsilon":
                p = x - sigma_hat * m
            else:
                p = m * (-sigma / (sigma ** 2 + 1) ** 0.5) + x / (sigma ** 2 + 1)
            d = (x - p) / sigma_hat
            dt = self.sigmas[self.step_index + 1] - sigma_hat
            self.step_index += 1
            return x + d * dt
        if self.kind == "euler_a":
            self.init_step_index(t)
            sigma = self.sigmas[self.step_index]
            if pt == "epsilon":
                p = x - sigma * m
            else:
                p = m * (-sigma / (sigma ** 2 + 1) ** 0.5) + x / (sigma ** 2 + 1)
            sf, st = self.sigmas[self.step_index], self.sigmas[self.step_index + 1]
            up = (st ** 2 * (sf ** 2 - st ** 2) / sf ** 2) ** 0.5
            down = (st ** 2 - up ** 2) ** 0.5
            prev = x + (x - p) / sigma * (down - sigma)
            noise = randn_tensor(m.shape, generator)
            self.step_index += 1
            return prev + noise * up
        if self.kind == "ddim":
            N = self.c["num_train_timesteps"]
            t = int(t)
            prev_t = t - N // self.n_req
            apt = self.alphas_cumprod[t]
            aptp = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
            bpt = 1 - apt
            if pt == "epsilon":
                p = (x - bpt ** 0.5 * m) / apt ** 0.5
                e = m
            elif pt == "sample":
                p = m
                e = (x - apt ** 0.5 * p) / bpt ** 0.5
            else:
                p = apt ** 0.5 * x - bpt ** 0.5 * m
                e = apt ** 0.5 * m + bpt ** 0.5 * x
            if self.c["thresholding"]:
                p = self.threshold(p)
            elif self.c["clip_sample"]:
                p = p.clamp(-self.c["clip_sample_range"], self.c["clip_sample_range"])
            var = (1 - aptp) / bpt * (1 - apt / aptp)
            std = self.eta * var ** 0.5
            prev = aptp ** 0.5 * p + (1 - aptp - std ** 2) ** 0.5 * e
            if self.eta > 0:
                prev = prev + std * randn_tensor(m.shape, generator)
            return prev
        return self.dpm_step(m, t, x, generator)

    def alpha_sigma(self, sigma):
        a = 1 / (sigma ** 2 + 1) ** 0.5
        return a, sigma * a

    def dpm_step(self, m, t, x, generator):
        c = self.c
        self.init_step_index(t)
        i, L = self.step_index, len(self.timesteps)
        lof = i == L - 1 and (c["euler_at_final"] or (c["lower_order_final"] and L < 15)
                              or c["final_sigmas_type"] == "zero")
        los = i == L - 2 and c["lower_order_final"] and L < 15
        algo, pt = c["algorithm_type"], c["prediction_type"]
        a0, s0 = self.alpha_sigma(self.sigmas[i])
        if algo != "dpmsolver":
            if pt == "epsilon":
                conv = (x - s0 * m) / a0
            elif pt == "sample":
                conv = m
            else:
                conv = a0 * x - s0 * m
            if c["thresholding"]:
                conv = self.threshold(conv)
        else:
            if pt == "epsilon":
                conv = m
            elif pt == "sample":
                conv = (x - a0 * m) / s0
            else:
                conv = a0 * m + s0 * x
            if c["thresholding"]:
                x0 = self.threshold((x - s0 * conv) / a0)
                conv = (x - a0 * x0) / s0
        order = c["solver_order"]
        for k in range(order - 1):
            self.model_outputs[k] = self.model_outputs[k + 1]
        self.model_outputs[-1] = conv
        noise = randn_tensor(m.shape, generator) if algo == "sde-dpmsolver++" else None
        at, st = self.alpha_sigma(self.sigmas[i + 1])
        lt = torch.log(at) - torch.log(st)
        ls0 = torch.log(a0) - torch.log(s0)
        h = lt - ls0
        heun = c["solver_type"] == "heun"
        if order == 1 or self.lower_order_nums < 1 or lof:
            m0 = conv
            if algo == "dpmsolver++":
                xt = st / s0 * x - at * (torch.exp(-h) - 1.0) * m0
            elif algo == "dpmsolver":
                xt = at / a0 * x - st * (torch.exp(h) - 1.0) * m0
            else:
                xt = (st / s0 * torch.exp(-h) * x + at * (1 - torch.exp(-2.0 * h)) * m0
                      + st * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise)
        else:
            a1, s1 = self.alpha_sigma(self.sigmas[i - 1])
            ls1 = torch.log(a1) - torch.log(s1)
            m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
            h0 = ls0 - ls1
            r0 = h0 / h
            if order == 2 or self.lower_order_nums < 2 or los:
                D0, D1 = m0, 1.0 / r0 * (m0 - m1)
                if algo == "dpmsolver++":
                    if not heun:
                        xt = (st / s0 * x - at * (torch.exp(-h) - 1.0) * D0
                              - 0.5 * (at * (torch.exp(-h) - 1.0)) * D1)
                    else:
                        xt = (st / s0 * x - at * (torch.exp(-h) - 1.0) * D0
                              + at * ((torch.exp(-h) - 1.0) / h + 1.0) * D1)
                elif algo == "dpmsolver":
                    if not heun:
                        xt = (at / a0 * x - st * (torch.exp(h) - 1.0) * D0
                              - 0.5 * (st * (torch.exp(h) - 1.0)) * D1)
                    else:
                        xt = (at / a0 * x - st * (torch.exp(h) - 1.0) * D0
                              - st * ((torch.exp(h) - 1.0) / h - 1.0) * D1)
                else:
                    e = st * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise
                    if not heun:
                        xt = (st / s0 * torch.exp(-h) * x + at * (1 - torch.exp(-2.0 * h)) * D0
                              + 0.5 * (at * (1 - torch.exp(-2.0 * h))) * D1 + e)
                    else:
                        xt = (st / s0 * torch.exp(-h) * x + at * (1 - torch.exp(-2.0 * h)) * D0
                              + at * ((1.0 - torch.exp(-2.0 * h)) / (-2.0 * h) + 1.0) * D1 + e)
            else:
                a2, s2 = self.alpha_sigma(self.sigmas[i - 2])
                ls2 = torch.log(a2) - torch.log(s2)
                m2 = self.model_outputs[-3]
                h1 = ls1 - ls2
                r1 = h1 / h
                D0 = m0
                D10, D11 = 1.0 / r0 * (m0 - m1), 1.0 / r1 * (m1 - m2)
                D1 = D10 + r0 / (r0 + r1) * (D10 - D11)
                D2 = 1.0 / (r0 + r1) * (D10 - D11)
                if algo == "dpmsolver++":
                    xt = (st / s0 * x - at * (torch.exp(-h) - 1.0) * D0
                          + at * ((torch.exp(-h) - 1.0) / h + 1.0) * D1
                          - at * ((torch.exp(-h) - 1.0 + h) / h ** 2 - 0.5) * D2)
                elif algo == "dpmsolver":
                    xt = (at / a0 * x - st * (torch.exp(h) - 1.0) * D0
                          - st * ((torch.exp(h) - 1.0) / h - 1.0) * D1
                          - st * ((torch.exp(h) - 1.0 - h) / h ** 2 - 0.5) * D2)
                else:
                    xt = (st / s0 * torch.exp(-h) * x + at * (1.0 - torch.exp(-2.0 * h)) * D0
                          + at * ((1.0 - torch.exp(-2.0 * h)) / (-2.0 * h) + 1.0) * D1
                          + at * ((1.0 - torch.exp(-2.0 * h) - 2.0 * h) / (2.0 * h) ** 2 - 0.5) * D2
                          + st * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise)
        if self.lower_order_nums < order:
            self.lower_order_nums += 1
        self.step_index += 1
        return xt

    def add_noise(self, x, noise, t):
        if self.kind == "ddim":
            acp = self.alphas_cumprod[int(t)]
            return acp ** 0.5 * x + (1 - acp) ** 0.5 * noise
        if self.begin_index is None:
            idx = self.index_for_timestep(t)
        elif self.step_index is not None:
            idx = self.step_index
        else:
            idx = self.begin_index
        sigma = self.sigmas[idx]
        if self.kind == "dpm":
            a, s = self.alpha_sigma(sigma)
            return a * x + s * noise
        return x + noise * sigma


def randn_tensor(shape, generator):
    if isinstance(generator, list):
        return torch.cat([torch.randn((1,) + tuple(shape[1:]), generator=g) for g in generator], dim=0)
    return torch.randn(shape, generator=generator)


# ---- SchedulerCommonTest's dummies (tests/schedulers/test_schedulers.py) --

def dummy_sample_deter():
    n = 4 * 3 * 8 * 8
    return (torch.arange(n).reshape(3, 8, 8, 4) / n).permute(3, 0, 1, 2)


def dummy_noise_deter():
    n = 4 * 3 * 8 * 8
    return (torch.arange(n).flip(-1).reshape(3, 8, 8, 4) / n).permute(3, 0, 1, 2)


def dummy_model(sample, t):
    t = torch.as_tensor(t).reshape(-1, 1, 1, 1).to(dtype=sample.dtype)
    return sample * t / (t + 1)


def full_loop(kind, steps=10, t_start=None, eta=0.0, gens=None, seed=0, **cfg):
    s = Sched(kind, **cfg)
    s.set_timesteps(steps)
    s.eta = eta
    generator = gens if gens is not None else torch.Generator().manual_seed(seed)
    sample = dummy_sample_deter() * s.init_noise_sigma
    timesteps = s.timesteps
    if t_start is not None:
        timesteps = s.timesteps[t_start:]
        sample = s.add_noise(sample, dummy_noise_deter(), timesteps[0])
    for t in timesteps:
        sample = s.scale_model_input(sample, t)
        sample = s.step(dummy_model(sample, t), t, sample, generator)
    return sample


def img2img_loop(kind, steps, strength, seed, **cfg):
    # diffusers' get_timesteps + add_noise at the first timestep (SD img2img)
    s = Sched(kind, **cfg)
    s.set_timesteps(steps)
    n = s.num_inference_steps
    init = min(int(n * strength), n)
    t_start = max(n - init, 0)
    s.begin_index = t_start
    g = torch.Generator().manual_seed(seed)
    image = dummy_sample_deter() * 2 - 1
    noise = torch.randn(image.shape, generator=g)
    sample = s.add_noise(image, noise, s.timesteps[t_start])
    for t in s.timesteps[t_start:]:
        sample = s.scale_model_input(sample, t)
        sample = s.step(dummy_model(sample, t), t, sample, g)
    return sample, t_start


# ---- the replica against the upstream figures -----------------------------

def stats(x):
    return torch.sum(torch.abs(x)).item(), torch.mean(torch.abs(x)).item()


EU = dict(num_train_timesteps=1100)
UPSTREAM = [
    # (name, loop kwargs, expected sum or None, expected mean, test file::test)
    ("euler_no_noise", dict(kind="euler", **EU), 10.0807, 0.0131,
     "test_scheduler_euler.py::test_full_loop_no_noise"),
    ("euler_v_prediction", dict(kind="euler", prediction_type="v_prediction", **EU), 0.0002, 2.2676e-06,
     "test_scheduler_euler.py::test_full_loop_with_v_prediction"),
    ("euler_karras", dict(kind="euler", use_karras_sigmas=True, **EU), 124.52299499511719, 0.16213932633399963,
     "test_scheduler_euler.py::test_full_loop_device_karras_sigmas"),
    ("euler_with_noise", dict(kind="euler", t_start=8, **EU), 57062.9297, 74.3007,
     "test_scheduler_euler.py::test_full_loop_with_noise"),
    ("euler_a_no_noise", dict(kind="euler_a", **EU), 152.3192, 0.1983,
     "test_scheduler_euler_ancestral.py::test_full_loop_no_noise"),
    ("euler_a_v_prediction", dict(kind="euler_a", prediction_type="v_prediction", **EU), 108.4439, 0.1412,
     "test_scheduler_euler_ancestral.py::test_full_loop_with_v_prediction"),
    ("euler_a_with_noise", dict(kind="euler_a", t_start=8, **EU), 56163.0508, 73.129,
     "test_scheduler_euler_ancestral.py::test_full_loop_with_noise"),
    ("ddim_no_noise", dict(kind="ddim"), 172.0067, 0.223967, "test_scheduler_ddim.py::test_full_loop_no_noise"),
    ("ddim_v_prediction", dict(kind="ddim", prediction_type="v_prediction"), 52.5302, 0.0684,
     "test_scheduler_ddim.py::test_full_loop_with_v_prediction"),
    ("ddim_set_alpha_to_one", dict(kind="ddim", set_alpha_to_one=True, beta_start=0.01), 149.8295, 0.1951,
     "test_scheduler_ddim.py::test_full_loop_with_set_alpha_to_one"),
    ("ddim_no_set_alpha_to_one", dict(kind="ddim", set_alpha_to_one=False, beta_start=0.01), 149.0784, 0.1941,
     "test_scheduler_ddim.py::test_full_loop_with_no_set_alpha_to_one"),
    ("ddim_with_noise", dict(kind="ddim", t_start=8), 354.5418, 0.4616,
     "test_scheduler_ddim.py::test_full_loop_with_noise"),
]
DPM = dict(lower_order_final=False, final_sigmas_type="sigma_min")
UPSTREAM += [
    ("dpm_no_noise", dict(kind="dpm", **DPM), None, 0.3301, "test_scheduler_dpm_multi.py::test_full_loop_no_noise"),
    ("dpm_with_noise", dict(kind="dpm", t_start=5, **DPM), 318.4111, 0.4146,
     "test_scheduler_dpm_multi.py::test_full_loop_with_noise"),
    ("dpm_thresholding", dict(kind="dpm", thresholding=True, dynamic_thresholding_ratio=0.87, sample_max_value=0.5,
                              **DPM), None, 1.1364, "test_scheduler_dpm_multi.py::test_full_loop_no_noise_thres"),
    ("dpm_v_prediction", dict(kind="dpm", prediction_type="v_prediction", **DPM), None, 0.2251,
     "test_scheduler_dpm_multi.py::test_full_loop_with_v_prediction"),
    ("dpm_karras_v_prediction", dict(kind="dpm", prediction_type="v_prediction", use_karras_sigmas=True, **DPM),
     None, 0.2096, "test_scheduler_dpm_multi.py::test_full_loop_with_karras_and_v_prediction"),
]
for name, kw, want_sum, want_mean, src in UPSTREAM:
    got_sum, got_mean = stats(full_loop(**kw))
    assert want_sum is None or abs(got_sum - want_sum) < 1e-2, (name, got_sum, want_sum)
    assert abs(got_mean - want_mean) < 1e-3, (name, got_mean, want_mean)

# ddim _get_variance (test_scheduler_ddim.py::test_variance)
_d = Sched("ddim")
for (t, pt, want) in ((0, 0, 0.0), (420, 400, 0.14771), (980, 960, 0.3246), (487, 486, 0.00979), (999, 998, 0.02)):
    acp = _d.alphas_cumprod
    var = (1 - acp[pt]) / (1 - acp[t]) * (1 - acp[t] / acp[pt])
    assert abs(var.item() - want) < 1e-5

# ---- more loops, beyond the upstream figures ------------------------------
EXTRA = [
    ("ddim_eta_half", dict(kind="ddim", eta=0.5, seed=3)),
    ("ddim_trailing_v_thresholding", dict(kind="ddim", timestep_spacing="trailing", prediction_type="v_prediction",
                                          thresholding=True, sample_max_value=2.0)),
    ("ddim_sample_trailing_no_clip", dict(kind="ddim", prediction_type="sample", clip_sample=False,
                                          timestep_spacing="trailing", steps=7)),
    ("euler_leading_offset_sd", dict(kind="euler", beta_schedule="scaled_linear", beta_start=0.00085,
                                     beta_end=0.012, timestep_spacing="leading", steps_offset=1, steps=12)),
    ("euler_trailing_sample_sigma_min", dict(kind="euler", timestep_spacing="trailing", prediction_type="sample",
                                             final_sigmas_type="sigma_min", steps=7)),
    ("euler_a_batch_gens", dict(kind="euler_a", gens="batch")),
    ("dpm_order3", dict(kind="dpm", solver_order=3, steps=12, **DPM)),
    ("dpm_heun_defaults", dict(kind="dpm", solver_type="heun")),
    ("dpm_dpmsolver_sample", dict(kind="dpm", algorithm_type="dpmsolver", prediction_type="sample",
                                  final_sigmas_type="sigma_min")),
    ("dpm_sde", dict(kind="dpm", algorithm_type="sde-dpmsolver++", seed=5)),
    ("dpm_sde_order3_heun", dict(kind="dpm", algorithm_type="sde-dpmsolver++", solver_order=3, solver_type="heun",
                                 steps=16, seed=6)),
    ("dpm_karras_sd_20", dict(kind="dpm", beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              use_karras_sigmas=True, steps=20)),
    ("dpm_cos_karras_trailing", dict(kind="dpm", beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True,
                                     timestep_spacing="trailing", steps=8)),
]
extra_rows = []
for name, kw in EXTRA:
    kw = dict(kw)
    if kw.get("gens") == "batch":
        kw["gens"] = [torch.Generator().manual_seed(s) for s in (11, 12, 13, 14)]
    sm, mn = stats(full_loop(**kw))
    extra_rows.append((name, sm, mn))

IMG2IMG = [("euler_img2img_0.6", "euler", 10, 0.6, 21, {}),
           ("euler_a_img2img_0.3", "euler_a", 10, 0.3, 22, {}),
           ("ddim_img2img_0.75", "ddim", 20, 0.75, 23, {}),
           ("dpm_img2img_0.5", "dpm", 10, 0.5, 24, {})]
img_rows = []
for name, kind, steps, strength, seed, cfg in IMG2IMG:
    out, t_start = img2img_loop(kind, steps, strength, seed, **cfg)
    sm, mn = stats(out)
    img_rows.append((name, kind, steps, strength, seed, t_start, sm, mn))

# ---- schedules -------------------------------------------------------------
SCHEDULES = [
    ("euler_default_10", "euler", 10, {}),
    ("euler_1100_10", "euler", 10, EU),
    ("euler_sd_leading_30", "euler", 30, dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                              timestep_spacing="leading", steps_offset=1)),
    ("euler_karras_25", "euler", 25, dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                          use_karras_sigmas=True)),
    ("euler_trailing_7", "euler", 7, dict(timestep_spacing="trailing", final_sigmas_type="sigma_min")),
    ("euler_linspace_1", "euler", 1, {}),
    ("euler_a_leading_9", "euler_a", 9, dict(timestep_spacing="leading")),
    ("ddim_leading_offset_50", "ddim", 50, dict(steps_offset=1)),
    ("ddim_offset_5", "ddim", 5, dict(steps_offset=1)),
    ("ddim_trailing_7", "ddim", 7, dict(timestep_spacing="trailing")),
    ("ddim_linspace_10", "ddim", 10, dict(timestep_spacing="linspace")),
    ("dpm_default_10", "dpm", 10, {}),
    ("dpm_sd_karras_20", "dpm", 20, dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                         use_karras_sigmas=True)),
    ("dpm_trailing_7", "dpm", 7, dict(timestep_spacing="trailing")),
    ("dpm_leading_9", "dpm", 9, dict(timestep_spacing="leading", steps_offset=1, final_sigmas_type="sigma_min")),
    ("dpm_cos_karras_12", "dpm", 12, dict(beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True)),
    ("dpm_trailing_3", "dpm", 3, dict(timestep_spacing="trailing")),
]


def flt(x):
    s = "%.9g" % x
    if "e" not in s and "." not in s and "inf" not in s and "nan" not in s:
        s += ".0"
    return s + "f"


def print_array(decl, items):
    print(decl + " = {")
    line = "   "
    for it in items:
        item = " " + it + ","
        if len(line) + len(item) > 110:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")


KINDS = {"euler": "MT_SCHEDULER_EULER", "euler_a": "MT_SCHEDULER_EULER_ANCESTRAL", "ddim": "MT_SCHEDULER_DDIM",
         "dpm": "MT_SCHEDULER_DPMSOLVER_MULTISTEP"}
LOOP_KEYS = ("steps", "t_start", "eta", "gens", "seed", "kind")


def cfg_c(kind, cfg):
    """A C99 initializer of mt_scheduler_config with the keys given."""
    items = [".kind = %s" % KINDS[kind]]
    for k, v in cfg.items():
        if k in LOOP_KEYS:
            continue
        if isinstance(v, bool):
            items.append(".%s = %s" % (k, "MT_SCHED_TRUE" if v else "MT_SCHED_FALSE"))
        elif isinstance(v, str):
            items.append('.%s = "%s"' % (k, v))
        else:
            items.append(".%s = %r" % (k, v))
    lines, line = [], ""
    for it in items:
        if line and len(line) + len(it) > 96:
            lines.append(line + ",")
            line = ""
        line = line + (", " if line else "") + it
    lines.append(line)
    return "{" + "\n      ".join(lines) + "}"


print("/* generated by tests/golden/scheduler_golden.py (PyTorch %s, numpy %s) */" % (torch.__version__,
                                                                                    np.__version__))
rows = []
for name, kind, n, cfg in SCHEDULES:
    sc = Sched(kind, **cfg)
    sc.set_timesteps(n)
    print_array("static const float %s_ts[%d]" % (name, len(sc.timesteps)), [flt(float(t)) for t in sc.timesteps])
    if sc.sigmas is not None:
        print_array("static const float %s_sig[%d]" % (name, len(sc.sigmas)), [flt(float(v)) for v in sc.sigmas])
    rows.append('    {"%s",\n     %s,\n     %d, %d, %s_ts, %s, %s},' % (
        name, cfg_c(kind, cfg), n, len(sc.timesteps), name,
        ("%s_sig" % name) if sc.sigmas is not None else "NULL", flt(float(sc.init_noise_sigma))))
print("static const golden_schedule golden_schedules[] = {")
print("\n".join(rows))
print("};")

# alphas_cumprod samples for each beta schedule
ACP_IDX = [0, 1, 2, 3, 10, 99, 100, 250, 499, 500, 501, 750, 998, 999]
print_array("static const int acp_idx[%d]" % len(ACP_IDX), [str(i) for i in ACP_IDX])
for sched, extra in (("linear", {}), ("scaled_linear", dict(beta_start=0.00085, beta_end=0.012)),
                     ("squaredcos_cap_v2", {})):
    sc = Sched("ddim", beta_schedule=sched, **extra)
    print_array("static const float acp_%s[%d]" % (sched, len(ACP_IDX)),
                [flt(sc.alphas_cumprod[i].item()) for i in ACP_IDX])


def loop_row(name, kw, sm, mn):
    kw = dict(kw)
    kind = kw["kind"]
    return '    {"%s",\n     %s,\n     %d, %d, %r, %d, %d, %.9g, %.9g},' % (
        name, cfg_c(kind, kw), kw.get("steps", 10), kw.get("t_start", -1), float(kw.get("eta", 0.0)),
        kw.get("seed", 0), 1 if kw.get("gens") == "batch" else 0, sm, mn)


print("static const golden_loop golden_loops[] = {")
print("    /* replicas of the upstream loops */")
for name, kw, want_sum, want_mean, src in UPSTREAM:
    sm, mn = stats(full_loop(**kw))
    print(loop_row(name, kw, sm, mn))
print("    /* beyond the upstream tests */")
for (name, kw), (_, sm, mn) in zip(EXTRA, extra_rows):
    print(loop_row(name, kw, sm, mn))
print("};")

print("static const golden_img2img golden_img2img_loops[] = {")
for (name, kind, steps, strength, seed, cfg), row in zip(IMG2IMG, img_rows):
    t_start, sm, mn = row[5], row[6], row[7]
    print('    {"%s", %s, %d, %r, %d, %d, %.9g, %.9g},' % (name, cfg_c(kind, cfg), steps, strength, seed,
                                                             t_start, sm, mn))
print("};")
