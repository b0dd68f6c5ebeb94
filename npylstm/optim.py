"""Adam and SGD with torch.optim's arithmetic (its single-tensor code path).

Each optimiser updates ``p.data`` in place from ``p.grad``. The operations
and their order follow torch, so many steps agree with torch.optim to
float64 round-off. ``state_dict()``/``load_state_dict()`` carry everything
needed to resume exactly.
"""
import numpy as np

from .module import Parameter


class Optimizer:
    """One parameter group; per-parameter state in ``self.state[index]``."""

    def __init__(self, params, defaults):
        params = [params] if isinstance(params, Parameter) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} expects Parameters, got {type(p).__name__}")
        self.params = params
        self.param_groups = [dict(defaults, params=params)]
        self.state = {}

    def zero_grad(self):
        """Set the gradients of the optimised parameters to zero (in place)."""
        for p in self.params:
            p.grad[...] = 0

    def state_dict(self):
        """{"state": {index: {name: value}}, "param_groups": [hyper-parameters]}, copied."""
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.params)))
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in self.state.items()}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state; ValueError if they do not fit the parameters."""
        name = type(self).__name__
        try:
            groups, state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError(f"{name}.load_state_dict: expected keys 'state' and 'param_groups'")
        if len(groups) != 1 or len(groups[0].get("params", [])) != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state is for a different set of parameters")
        new_state = {}
        for i, s in state.items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"{name}.load_state_dict: no parameter {i}")
            p = self.params[i]
            new_state[i] = {}
            for k, v in s.items():
                if k == "step":
                    new_state[i][k] = float(v)
                    continue
                v = np.array(v, dtype=p.data.dtype)
                if v.shape != p.data.shape:
                    raise ValueError(f"{name}.load_state_dict: state {k!r} of parameter {i} has "
                                     f"shape {v.shape}, expected {p.data.shape}")
                new_state[i][k] = v
        group = dict(groups[0], params=self.params)
        for k, v in group.items():
            if isinstance(v, list) and k == "betas":
                group[k] = tuple(v)
        self.param_groups = [group]
        self.state = new_state


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) as torch.optim.Adam computes it.

    Per parameter, with g = grad (negated when ``maximize``) + weight_decay * p:
        m = m + (g - m) (1 - beta1)            torch's lerp
        v = v beta2 + (1 - beta2) g^2
        v_max = max(v_max, v)                  with amsgrad; then v_max replaces v
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False):
        if not lr >= 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not eps >= 0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Invalid beta parameters: {betas}")
        if not weight_decay >= 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=bool(amsgrad), maximize=bool(maximize)))

    def step(self):
        """Update every ``p.data`` in place from ``p.grad`` (one Adam step)."""
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        for index, p in enumerate(self.params):
            grad = -p.grad if group["maximize"] else p.grad
            if weight_decay != 0:
                grad = grad + weight_decay * p.data
            state = self.state.get(index)
            if state is None:
                state = self.state[index] = {"step": 0.0, "exp_avg": np.zeros_like(p.data),
                                             "exp_avg_sq": np.zeros_like(p.data)}
                if amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
            exp_avg += (grad - exp_avg) * (1 - beta1)
            exp_avg_sq *= beta2
            exp_avg_sq += (1 - beta2) * grad * grad
            bias_correction1 = 1 - beta1 ** step
            bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
            if amsgrad:
                np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                denom = np.sqrt(state["max_exp_avg_sq"]) / bias_correction2_sqrt + eps
            else:
                denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
            p.data += (-lr / bias_correction1) * (exp_avg / denom)


class SGD(Optimizer):
    """Stochastic gradient descent as torch.optim.SGD computes it.

    With g = grad (negated when ``maximize``) + weight_decay * p:
        b = g at the first step, then b = momentum b + (1 - dampening) g
        g = g + momentum b with nesterov, else g = b      (when momentum != 0)
        p = p - lr g
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        if not lr >= 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not momentum >= 0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not weight_decay >= 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=bool(nesterov),
                                      maximize=bool(maximize)))

    def step(self):
        """Update every ``p.data`` in place from ``p.grad`` (one SGD step)."""
        group = self.param_groups[0]
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay = group["weight_decay"]
        for index, p in enumerate(self.params):
            grad = -p.grad if group["maximize"] else p.grad
            if weight_decay != 0:
                grad = grad + weight_decay * p.data
            if momentum != 0:
                state = self.state.get(index)
                if state is None:
                    buf = grad.copy()
                    self.state[index] = {"momentum_buffer": buf}
                else:
                    buf = state["momentum_buffer"]
                    buf *= momentum
                    buf += (1 - dampening) * grad
                grad = grad + momentum * buf if group["nesterov"] else buf
            p.data += -lr * grad
