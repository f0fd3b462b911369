"""Selective scan, fast pure-PyTorch backend for CPU (and any device): chunked, with recomputation in backward.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C ·
                 t time within a chunk (length T = M · S) · m segment of a chunk · s time within a segment.

Why this shape of algorithm. The recurrence h_t = a_t ⊙ h_{t-1} + x_t (a_t = exp(Δ_t A), x_t = Δ_t B_t u_t, paper
eq. 2a) has a (b, d, n) state per step, so a whole-sequence parallel scan would need the (b, d, l, n) tensor that
makes pure-PyTorch Mamba ports run out of memory; a Python loop over l is dominated by per-op overhead. Here the
sequence is cut into chunks of T steps that are processed one after another, carrying the state, so memory is
O(b·d·l) for inputs and outputs plus O(b·d·T·n) for one chunk. Inside a chunk a two-level scan keeps the number of
Python-level operations at about sqrt(T) per level while each operation still covers many elements:

    1. local scans: the chunk is split into M segments of S steps; a loop over s = 0..S-1 advances all segments
       at once (one fused multiply-add over (b, d, M, n) per step);
    2. segment carries: a loop over the M segments passes the state across segment boundaries, using each
       segment's cumulative decay P = exp(A · Σ Δ) (in (0, 1]);
    3. fix-up: h = local + P ⊙ carry, one fused multiply-add over the chunk.

Only decays in (0, 1], exponentials of non-positive sums and sums of inputs appear: there is no exp of a positive
running sum, so strong decays and large Δ (say 10) underflow gracefully instead of overflowing, at any length (the
usual exp(cumsum)/exp(-cumsum) factorisation overflows float32 as soon as |A|·ΣΔ exceeds about 88). Decays are
floored at exp(-60) (see _log_floor): subnormal numbers would make the CPU 10-50x slower.

Backward (the paper's section 3.3.2 recomputation, done chunk by chunk in reverse): the forward saves only the
state at each chunk start; each chunk recomputes its states, runs the adjoint recurrence
    g_t = C_t ⊗ dy_t + a_{t+1} ⊙ g_{t+1}        (g_t = ∂loss/∂h_t; the carry from the next chunk is a_{t1} ⊙ g_{t1})
with the same two-level scan backwards, and forms the input gradients from g, h_{t-1} and a:
    ∂x_t = g_t,   ∂log a_t = g_t ⊙ a_t ⊙ h_{t-1},   ∂h_{-1} = a_0 ⊙ g_0.
delta_bias with softplus, the skip D and the gate z are fused into the same autograd Function (class _Chunk), so
the forward saves each input once and nothing of size (b, d, l) besides.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# About this many elements per chunk buffer (S, b, M, d, n).
_TARGET_CHUNK_ELEMENTS = 1 << 21
_MAX_SEGMENT = 32  # S: steps per segment
_MAX_SEGMENTS = 64  # M: segments per chunk
# Tests set this to fill every output buffer with NaN before use, so an element left unwritten cannot pass.
POISON_OUTPUTS = False


def _new_output(like: torch.Tensor) -> torch.Tensor:
    return torch.full_like(like, float("nan")) if POISON_OUTPUTS else torch.empty_like(like)


def _chunk_geometry(b: int, d: int, l: int, n: int) -> tuple[int, int]:
    """(S, M): segment length and segments per chunk (chunk length T = S·M). Measured on 2 cores: S = 32 and
    chunks of about 2M state elements beat both one long sequential segment and cache-sized chunks."""
    S = max(1, min(_MAX_SEGMENT, math.isqrt(max(l, 1))))
    M = _TARGET_CHUNK_ELEMENTS // max(1, b * d * n * S)
    M = max(1, min(_MAX_SEGMENTS, M, -(-l // S)))
    return S, M


# Chunk buffers are time-major, (S, b, M, d, n): time t0 + m·S + s sits at [s, :, m]. One step of the local scans is
# then one contiguous slice, and for each (s, b, m) the (d, n) state is contiguous.


def _to_tm(x_bdt: torch.Tensor, S: int, M: int) -> torch.Tensor:
    """(b, d, T) → a (S, b, M, d) view, T = M·S padded with zeros."""
    b, d, t = x_bdt.shape
    if t < S * M:
        x_bdt = F.pad(x_bdt, (0, S * M - t))
    return x_bdt.reshape(b, d, M, S).permute(3, 0, 2, 1)


def _from_tm(x_sbmd: torch.Tensor, t: int) -> torch.Tensor:
    """(S, b, M, d) → (b, d, t): the first t steps, in sequence order."""
    S, b, M, d = x_sbmd.shape
    return x_sbmd.permute(1, 3, 2, 0).reshape(b, d, M * S)[:, :, :t]


class _BC:
    """B or C in one of its three layouts, and the three products the scan takes with it, chunk by chunk.

    (d, n) time-invariant is treated as d groups of one channel; (b, n, l) as one group. Inside a chunk the
    time-varying layouts are viewed as (S, b, M, g, n), and the state as (S, b, M, g, d/g, n), so that the sums
    over n and over the channels of a group are batched matrix products.
    """

    def __init__(self, X: torch.Tensor, d: int):
        self.time_invariant = X.dim() == 2
        self.shape = X.shape
        if self.time_invariant:
            self.g = d
            self.X = X
        else:
            self.X = X if X.dim() == 4 else X.unsqueeze(1)  # (b, g, n, l)
            self.g = self.X.shape[1]
        self.Xc = None

    def load(self, t0: int, t1: int, S: int, M: int) -> None:
        """Select the chunk [t0, t1), zero-padded to S·M steps (no input, no readout in the padding)."""
        self.t0, self.t1 = t0, t1
        if self.time_invariant:
            self.Xc = self.X.reshape(1, 1, 1, self.g, 1, -1)  # (1, 1, 1, d, 1, n)
            return
        Xc = self.X[..., t0:t1]  # (b, g, n, t)
        if t1 - t0 < S * M:
            Xc = F.pad(Xc, (0, S * M - (t1 - t0)))
        b, g, n, _ = Xc.shape
        self.Xc = Xc.reshape(b, g, n, M, S).permute(4, 0, 3, 1, 2).unsqueeze(4)  # (S, b, M, g, 1, n)

    def outer(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """out (S, b, M, d, n) ← v (S, b, M, d) ⊗ X: the input Δ u B, or the adjoint source dy C."""
        torch.mul(_grouped(v.unsqueeze(-1), self.g), self.Xc, out=_grouped(out, self.g))
        return out

    def contract_n(self, x: torch.Tensor) -> torch.Tensor:
        """Σ_n x ⊙ X → (S, b, M, d): the readout <C, h>, or <B, g> in backward."""
        S, b, M, d, n = x.shape
        if self.time_invariant:
            return (_grouped(x, self.g) * self.Xc).sum(-1).view(S, b, M, d)
        return torch.matmul(_grouped(x, self.g), self.Xc.transpose(-1, -2)).view(S, b, M, d)

    def new_grad(self) -> torch.Tensor:
        return torch.zeros_like(self.X) if self.time_invariant else _new_output(self.X)

    def add_grad(self, grad: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> None:
        """grad of X += Σ_{channels of a group} v ⊙ x (and Σ over time and batch when time-invariant)."""
        if self.time_invariant:
            grad += torch.einsum("sbmdn,sbmd->dn", x, v)
            return
        S, b, M, d, n = x.shape
        xg = _grouped(x, self.g)  # (S, b, M, g, dg, n)
        vg = _grouped(v.unsqueeze(-1), self.g).transpose(-1, -2)  # (S, b, M, g, 1, dg)
        per_t = torch.matmul(vg, xg).view(S, b, M, self.g, n).permute(1, 3, 4, 2, 0).reshape(b, self.g, n, M * S)
        grad[..., self.t0 : self.t1] = per_t[..., : self.t1 - self.t0]

    def grad_as_input(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.view(self.shape)


def _grouped(x: torch.Tensor, g: int) -> torch.Tensor:
    """(S, b, M, d, n) → (S, b, M, g, d/g, n) view."""
    S, b, M, d, n = x.shape
    return x.view(S, b, M, g, d // g, n)


def _scan_forward_(x, a, P, h0, carry) -> torch.Tensor:
    """In place: x (S, b, M, d, n) ← h_t = a_t h_{t-1} + x_t from h_{-1} = h0 (b, d, n).

    P[s] = a_0 ⋯ a_s within each segment (None when M = 1); carry (b, M, d, n) receives the state before each
    segment. Returns the state at the chunk's end.
    """
    S, M = x.shape[0], x.shape[2]
    if M == 1:  # one segment: a plain loop over time, seeded with h0
        carry[:, 0] = h0
        x[0, :, 0].addcmul_(a[0, :, 0], h0)
        for s in range(1, S):
            x[s].addcmul_(a[s], x[s - 1])
        return x[S - 1, :, 0].clone()
    for s in range(1, S):  # 1. local scans, all segments at once
        x[s].addcmul_(a[s], x[s - 1])
    h = h0
    for m in range(M):  # 2. carries across segments
        carry[:, m] = h
        h = torch.addcmul(x[S - 1, :, m], P[S - 1, :, m], h)
    x.addcmul_(P, carry)  # 3. fix-up
    return h


def _scan_backward_(x, a, P, g_end) -> torch.Tensor:
    """In place: x ← g_t = x_t + a_t g_{t+1} from g_T = g_end (the time-reversed twin of _scan_forward_).

    P[s] = a_s ⋯ a_{S-1} within each segment (None when M = 1). Returns g at the chunk's first step.
    """
    S, M = x.shape[0], x.shape[2]
    if M == 1:
        x[S - 1, :, 0].addcmul_(a[S - 1, :, 0], g_end)
        for s in range(S - 2, -1, -1):
            x[s].addcmul_(a[s], x[s + 1])
        return x[0, :, 0].clone()
    for s in range(S - 2, -1, -1):
        x[s].addcmul_(a[s], x[s + 1])
    carry = torch.empty_like(x[0])
    g = g_end
    for m in range(M - 1, -1, -1):
        carry[:, m] = g
        g = torch.addcmul(x[0, :, m], P[0, :, m], g)
    x.addcmul_(P, carry)
    return g


def _log_floor(dtype: torch.dtype) -> float:
    """Decays below exp(floor) are raised to it (8.7e-27 in float32): subnormal results make x86 exp and multiply
    10-50x slower, and the change is far below the resolution of any state it multiplies. Products of two floored
    decays underflow straight to zero, which costs nothing."""
    return -600.0 if dtype == torch.float64 else -60.0


def _decay_(out: torch.Tensor, dt_sbmd: torch.Tensor, A: torch.Tensor, keep: torch.Tensor | None = None):
    """out (S, b, M, d, n) ← exp(Δ A), the zero-order hold of paper eq. 4 (in (0, 1] for Δ ≥ 0, A < 0).

    Given a cumulative sum of Δ it gives the decay over several steps: only sums of Δ are exponentiated, never
    a difference of them, so nothing can overflow. `keep` (S, b, M) is 0 where a packed sequence starts (or has
    started since the segment's start, for a cumulative decay): the decay there is 0 and no state crosses."""
    torch.mul(dt_sbmd.unsqueeze(-1), A, out=out).clamp_min_(_log_floor(out.dtype))
    out.exp_()
    return out if keep is None else out.mul_(keep[..., None, None])


def _keep_masks(reset_bt: torch.Tensor | None, t0: int, t1: int, S: int, M: int, dtype):
    """From reset (b, l) (True where a new packed sequence starts) the (S, b, M) masks of one chunk:
    (a_t kept, cumulative decay since the segment's start kept, a_{t+1} kept, suffix decay kept)."""
    if reset_bt is None:
        return None, None, None, None
    r = _to_tm(reset_bt[:, None, t0:t1].to(dtype), S, M)[..., 0]  # (S, b, M)
    # reset at t+1: the next step of the segment, or the next segment's first step; past the chunk's end the
    # decay is 1 (the carry from the next chunk already holds a_{t1}, zero if a sequence starts there)
    nxt = torch.zeros_like(r)
    nxt[:-1] = r[1:]
    nxt[-1, :, :-1] = r[0, :, 1:]
    keep, keep_next = 1 - r, 1 - nxt
    keep_cum = (r.cumsum(0) == 0).to(dtype)
    keep_suffix = (_reverse_cumsum(nxt, 0) == 0).to(dtype)
    return keep, keep_cum, keep_next, keep_suffix


def sequence_starts(seq_idx: torch.Tensor) -> torch.Tensor:
    """(b, l) bool, True where a new packed sequence starts (t > 0 and seq_idx changes)."""
    starts = torch.zeros_like(seq_idx, dtype=torch.bool)
    starts[:, 1:] = seq_idx[:, 1:] != seq_idx[:, :-1]
    return starts


def _reverse_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.flip(dim).cumsum(dim).flip(dim)


class _Chunk:
    """The elementwise ends of the scan for steps [t0, t1), in (b, d, t) layout, computed in the wide dtype:
    Δ = softplus(delta + delta_bias), and out = (y + D u) · silu(z). Fusing them here (rather than leaving them to
    autograd) keeps a single saved copy of each input instead of one tensor of size (b, d, l) per operation."""

    def __init__(self, ctx_inputs, t0: int, t1: int, wide: torch.dtype):
        u, delta, D, z, delta_bias, softplus = ctx_inputs
        self.u = u[:, :, t0:t1].to(wide)
        pre = delta[:, :, t0:t1].to(wide)
        if delta_bias is not None:
            pre = pre + delta_bias.to(wide)[:, None]
        self.pre, self.softplus = pre, softplus
        self.dt = F.softplus(pre) if softplus else pre
        self.D = None if D is None else D.to(wide)[:, None]
        self.z = None if z is None else z[:, :, t0:t1].to(wide)

    def output(self, y: torch.Tensor) -> torch.Tensor:
        if self.D is not None:
            y = y + self.D * self.u
        return y if self.z is None else y * F.silu(self.z)

    def backward(self, dout: torch.Tensor, y: torch.Tensor | None):
        """From ∂out, returns ∂y (into the scan), the skip's ∂u, ∂D and ∂z (y is the scan output, needed for z)."""
        dy, du_skip, dD, dz = dout, None, None, None
        if self.z is not None:
            sig = torch.sigmoid(self.z)
            y_pre = y if self.D is None else y + self.D * self.u
            dz = dout * y_pre * sig * (1 + self.z * (1 - sig))  # silu'(z) = σ(z)(1 + z(1 - σ(z)))
            dy = dout * self.z * sig
        if self.D is not None:
            du_skip = dy * self.D
            dD = (dy * self.u).sum(dim=(0, 2))
        return dy, du_skip, dD, dz

    def ddelta(self, ddt: torch.Tensor) -> torch.Tensor:
        return ddt * torch.sigmoid(self.pre) if self.softplus else ddt


class _ChunkedScan(torch.autograd.Function):
    """out = (<C_t, h_t> + D u_t) · silu(z_t), h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t, Δ = softplus(delta + bias).

    Returns (out (b, d, l) in u's dtype, h_{l-1} (b, d, n) in the wide dtype)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, h0, softplus, reset):
        b, d, l = u.shape
        n = A.shape[1]
        wide = A.dtype
        S, M = _chunk_geometry(b, d, l, n)
        T = S * M
        Bc, Cc = _BC(B, d), _BC(C, d)
        out = _new_output(u)
        starts = []
        h = h0
        x = torch.empty(S, b, M, d, n, dtype=wide, device=u.device)
        a, P, carry = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x[0])
        elementwise = (u, delta, D, z, delta_bias, softplus)
        for t0 in range(0, l, T):
            t1 = min(t0 + T, l)
            starts.append(h)
            ch = _Chunk(elementwise, t0, t1, wide)
            dt = _to_tm(ch.dt, S, M)  # zero Δ in the padding: a = 1, x = 0, the state just waits
            keep, keep_cum, _, _ = _keep_masks(reset, t0, t1, S, M, wide)
            _decay_(a, dt, A, keep)
            P_ = _decay_(P, dt.cumsum(0), A, keep_cum) if M > 1 else None
            Bc.load(t0, t1, S, M)
            Cc.load(t0, t1, S, M)
            Bc.outer(dt * _to_tm(ch.u, S, M), out=x)
            h = _scan_forward_(x, a, P_, h, carry)
            out[:, :, t0:t1] = ch.output(_from_tm(Cc.contract_n(x), t1 - t0))
        ckpt = torch.stack(starts) if starts else h0[None]
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ckpt, reset)
        ctx.geometry, ctx.softplus = (S, M), softplus
        return out, h

    @staticmethod
    def backward(ctx, dout, dh_last):
        u, delta, A, B, C, D, z, delta_bias, starts, reset = ctx.saved_tensors
        S, M = ctx.geometry
        T = S * M
        b, d, l = u.shape
        n = A.shape[1]
        wide = A.dtype
        Bc, Cc = _BC(B, d), _BC(C, d)
        du, ddelta = _new_output(u), _new_output(delta)
        dz = None if z is None else _new_output(z)
        dA = torch.zeros_like(A)
        dD = None if D is None else torch.zeros(d, dtype=wide, device=u.device)
        dbias = None if delta_bias is None else torch.zeros(d, dtype=wide, device=u.device)
        dB, dC = Bc.new_grad(), Cc.new_grad()
        g = torch.zeros(b, d, n, dtype=wide, device=u.device) if dh_last is None else dh_last.to(wide)
        elementwise = (u, delta, D, z, delta_bias, ctx.softplus)

        # hbuf[0] holds h before each segment, so hbuf[:S] is h_{t-1} and hbuf[1:] is h_t (time-major layout);
        # likewise abuf[1:] is a_{t+1}, with abuf[S] = the next segment's first decay (1 past the chunk's end).
        hbuf = torch.empty(S + 1, b, M, d, n, dtype=wide, device=u.device)
        abuf = torch.empty_like(hbuf)
        P = torch.empty_like(hbuf[1:])
        gh = torch.empty_like(P)
        nchunks = -(-l // T)
        for c in range(nchunks - 1, -1, -1):
            t0, t1 = c * T, min(c * T + T, l)
            ch = _Chunk(elementwise, t0, t1, wide)
            dt, uc = _to_tm(ch.dt, S, M), _to_tm(ch.u, S, M)
            dtu = dt * uc
            Bc.load(t0, t1, S, M)
            Cc.load(t0, t1, S, M)
            keep, keep_cum, keep_next, keep_suffix = _keep_masks(reset, t0, t1, S, M, wide)
            a = _decay_(abuf[:S], dt, A, keep)
            abuf[S, :, : M - 1] = abuf[0, :, 1:]
            abuf[S, :, M - 1] = 1.0

            # Recompute the states of this chunk from its saved start (and the scan output, for the gate).
            h_prev, h = hbuf[:S], hbuf[1:]
            Bc.outer(dtu, out=h)
            _scan_forward_(h, a, _decay_(P, dt.cumsum(0), A, keep_cum) if M > 1 else None, starts[c], hbuf[0])
            y = _from_tm(Cc.contract_n(h), t1 - t0) if z is not None else None
            dout_c = torch.zeros_like(ch.u) if dout is None else dout[:, :, t0:t1].to(wide)
            dy, du_skip, dD_c, dz_c = ch.backward(dout_c, y)

            # Adjoint states g_t, scanned backwards from the next chunk's carry, with decays a_{t+1}.
            dt_next = torch.cat([dt[1:], torch.cat([dt[:1, :, 1:], torch.zeros_like(dt[:1, :, :1])], 2)], 0)
            dyc = _to_tm(dy, S, M)
            Cc.outer(dyc, out=gh)
            P_next = _decay_(P, _reverse_cumsum(dt_next, 0), A, keep_suffix) if M > 1 else None
            _scan_backward_(gh, abuf[1:], P_next, g)
            work = P  # free again: reuse it for the decay gradient

            # dC_t = Σ_d h_t dy_t;  ∂x_t = g_t gives du, dΔ (through Δ u) and dB.
            Cc.add_grad(dC, h, dyc)
            gB = Bc.contract_n(gh)
            Bc.add_grad(dB, gh, dtu)
            # ∂(Δ_t A) = g_t ⊙ a_t ⊙ h_{t-1}: gives dΔ and dA.
            torch.mul(a, h_prev, out=work).mul_(gh)
            ddt = _from_tm(gB * uc + (work * A).sum(-1), t1 - t0)
            dA += (work * dt.unsqueeze(-1)).sum(dim=(0, 1, 2))
            du_c = _from_tm(gB * dt, t1 - t0)
            du[:, :, t0:t1] = du_c if du_skip is None else du_c + du_skip
            dpre = ch.ddelta(ddt)
            ddelta[:, :, t0:t1] = dpre
            if dbias is not None:
                dbias += dpre.sum(dim=(0, 2))
            if dD is not None:
                dD += dD_c
            if dz is not None:
                dz[:, :, t0:t1] = dz_c
            g = a[0, :, 0] * gh[0, :, 0]  # ∂loss/∂h_{t0-1}: the carry into the previous chunk
        return du, ddelta, dA, Bc.grad_as_input(dB), Cc.grad_as_input(dC), dD, dz, dbias, g, None, None


def selective_scan_chunked(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None,
    return_last_state=False, seq_idx=None,
):
    """Chunked backend; same contract as seqssm.kernels.selective_scan (inputs already validated there)."""
    wide = torch.float64 if u.dtype == torch.float64 else torch.float32
    b, d, l = u.shape
    n = A.shape[1]
    h0 = torch.zeros(b, d, n, dtype=wide, device=u.device) if initial_state is None else initial_state.to(wide)
    out, h_last = _ChunkedScan.apply(
        u, delta, A.to(wide), B.to(wide), C.to(wide), D, z, delta_bias, h0, bool(delta_softplus),
        None if seq_idx is None else sequence_starts(seq_idx),
    )
    return (out, h_last) if return_last_state else out
