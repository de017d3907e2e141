"""Reference values for tests/test_ops.c from PyTorch.

Run with Debian's PyTorch 1.13:  /usr/bin/python3 tests/golden/ops_golden.py
It prints C arrays and strings; paste them into tests/test_ops.c (the block
between "golden: begin" and "golden: end"). Values are float32, printed with
9 significant digits so they read back exactly.
"""
import torch

torch.set_num_threads(1)


def flit(v):
    if v != v:
        return "NAN"
    if v in (float("inf"), -float("inf")):
        return "INFINITY" if v > 0 else "-INFINITY"
    s = "%.9g" % v
    if "." not in s and "e" not in s:
        s += ".0"
    return s + "f"


def arr(name, t, ctype="float"):
    flat = t.reshape(-1).tolist()
    if ctype == "float":
        body = ", ".join(flit(v) for v in flat)
    else:
        body = ", ".join("%d" % v for v in flat)
    print("static const %s %s[%d] = {%s};" % (ctype, name, len(flat), body))


def cstr(name, s):
    esc = s.replace("\\", "\\\\").replace('"', '\\"').split("\n")
    print("static const char %s[] =" % name)
    for i, line in enumerate(esc):
        print('    "%s%s"%s' % (line, "\\n" if i < len(esc) - 1 else "", ";" if i == len(esc) - 1 else ""))


print("/* golden: begin -- tests/golden/ops_golden.py, PyTorch %s */" % torch.__version__)
g = torch.Generator().manual_seed(0)
x = torch.randn(2, 3, 5, generator=g) * 3  # [2, 3, 5]
y = torch.randn(2, 3, 5, generator=g)
w = torch.rand(2, 3, 5, generator=g)
arr("g_x", x)
arr("g_y", y)
arr("g_w", w)
# unary
arr("g_gelu", torch.nn.functional.gelu(x))
arr("g_gelu_tanh", torch.nn.functional.gelu(x, approximate="tanh"))
arr("g_silu", torch.nn.functional.silu(x))
arr("g_sigmoid", torch.sigmoid(x))
arr("g_tanh", torch.tanh(x))
arr("g_exp", torch.exp(x))
arr("g_log_abs", torch.log(x.abs()))
arr("g_rsqrt_abs", torch.rsqrt(x.abs()))
# binary and friends
arr("g_lerp03", torch.lerp(x, y, 0.3))
arr("g_lerp07", torch.lerp(x, y, 0.7))
arr("g_lerpw", torch.lerp(x, y, w))
arr("g_axpby", 0.7 * x + -1.3 * y)
arr("g_div", x / y)
arr("g_clamp", torch.clamp(x, -1.5, 2.0))
# softmax
arr("g_softmax_last", torch.softmax(x, dim=-1))
arr("g_softmax_mid", torch.softmax(x, dim=1))
arr("g_log_softmax_first", torch.log_softmax(x, dim=0))
arr("g_log_softmax_last", torch.log_softmax(x, dim=2))
# reductions
arr("g_sum_d0", x.sum(dim=0))
arr("g_mean_d2", x.mean(dim=2))
arr("g_var_d1", x.var(dim=1))  # unbiased
arr("g_var_d2_c0", torch.var(x, dim=2, correction=0))
arr("g_std_all", x.std().reshape(1))
arr("g_var_all_c0", torch.var(x, unbiased=False).reshape(1))
arr("g_mean_all", x.mean().reshape(1))
arr("g_max_d1", x.max(dim=1).values)
arr("g_min_dm1", x.min(dim=-1).values)
arr("g_argmax_d1", x.argmax(dim=1), "long long")
arr("g_argmin_d2", x.argmin(dim=2), "long long")
arr("g_argmax_all", x.argmax().reshape(1), "long long")
# ties and NaN: first index wins, NaN beats everything
t = torch.tensor([[1.0, 3.0, 3.0, 2.0], [float("nan"), 5.0, float("nan"), 1.0]])
arr("g_tie_argmax", t.argmax(dim=1), "long long")
arr("g_tie_argmin", t.argmin(dim=1), "long long")
arr("g_tie_max", t.max(dim=1).values)

# printing
p = {}
torch.manual_seed(0)
p["p_randn44"] = torch.randn(4, 4)
p["p_randn23"] = torch.randn(2, 3)
p["p_arange23"] = torch.arange(6.0).reshape(2, 3)
p["p_sci"] = torch.tensor([1e-5, 1.0, 100.0, -2.5])
p["p_intbig"] = torch.tensor([1.0, 2.0, 1000.0, -3.0, 0.0])
p["p_intsci"] = torch.tensor([1.0, 20000.0])
p["p_nonfinite"] = torch.tensor([1.5, float("nan"), float("inf"), -float("inf"), -0.25])
p["p_intnan"] = torch.tensor([1.0, float("nan"), 0.0, -0.0])
p["p_zeros"] = torch.zeros(2, 2)
p["p_scalar"] = torch.tensor(3.25)
p["p_long"] = (torch.arange(30.0) - 11.0) / 3.0
p["p_summ1d"] = torch.arange(2000.0) / 7.0
p["p_summ2d"] = ((torch.arange(1200.0) - 600.0) / 37.0).reshape(3, 400)
p["p_summ3d"] = ((torch.arange(2 * 10 * 60.0) - 50.0) / 9.0).reshape(2, 10, 60)
p["p_i64"] = torch.arange(-3, 9).reshape(3, 4) * 25
p["p_i64summ"] = torch.arange(1500) * 3
p["p_f16"] = (torch.arange(6.0).reshape(2, 3) / 3.0).half()
p["p_bf16"] = (torch.arange(4.0) - 1.5).bfloat16()
p["p_empty"] = torch.zeros(0)
p["p_empty20"] = torch.zeros(2, 0)
p["p_empty_i64"] = torch.zeros(0, dtype=torch.int64)
p["p_4d"] = ((torch.arange(24.0) - 5.0) / 4.0).reshape(1, 2, 3, 4)
p["p_wide16"] = torch.arange(40.0).reshape(2, 20).half() / 8
p["p_wrap"] = (torch.arange(9.0) / 8.0).half()  # the dtype suffix moves to a new line
p["p_transposed"] = torch.arange(6.0).reshape(2, 3).t()
for k, v in p.items():
    cstr(k, repr(v))
arr("p_randn44_data", p["p_randn44"])
arr("p_randn23_data", p["p_randn23"])
print("/* golden: end */")
