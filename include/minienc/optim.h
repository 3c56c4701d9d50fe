/* Optimizers (AdamW, SGD with momentum), learning-rate schedules and gradient-norm clipping over the
 * parameter registry (minienc/params.h). The update rules are PyTorch's, step for step.
 *
 * Life cycle: me_optim_init once the registry is allocated; me_optim_step per update (it never
 * allocates); me_optim_free. The optimizer owns m, v and decay; it borrows the registry, whose
 * layout (n, total, offsets) must not change while the optimizer lives.
 *
 * State layout: m and v are [params->total] floats, element i belonging to the same parameter element
 * as params->data[i], so a checkpoint can walk the registry's {name, offset, count} table to save
 * and restore them (PyTorch names: exp_avg / exp_avg_sq for AdamW, momentum_buffer for SGD).
 * Restoring a checkpoint means copying m, v and step back; nothing else is hidden.
 *
 * AdamW (torch.optim.AdamW, amsgrad=False, maximize=False), with g = grad, t = step + 1, and the
 * scalars in double:
 *     p <- p * (1 - lr*wd)                          only for tensors with decay[i] = 1
 *     m <- b1*m + (1 - b1)*g
 *     v <- b2*v + (1 - b2)*g*g
 *     p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * SGD (torch.optim.SGD, dampening 0, nesterov False):
 *     g' = g + wd*p                                 wd*p only for tensors with decay[i] = 1
 *     if momentum != 0: buf = g' at the first update (step == 0), else buf = momentum*buf + g';
 *                       g' = buf                    (buf lives in m)
 *     p <- p - lr*g'
 * Elementwise arithmetic is float32 like PyTorch's float32 path; only the per-step scalars are double. */
#ifndef MINIENC_OPTIM_H
#define MINIENC_OPTIM_H

#include "minienc/config.h"
#include "minienc/params.h"
#include "minienc/status.h"

typedef struct {
    me_optimizer kind;
    double beta1, beta2, eps, weight_decay, momentum; /* as given (Python floats in PyTorch) */
    int decay_norm_and_bias;
    long step;             /* number of updates done so far */
    int n_tensors;         /* params->n at init, checked at every step */
    size_t total;          /* params->total at init, checked at every step */
    float *m;              /* [total], owned: AdamW exp_avg, or the SGD momentum buffer */
    float *v;              /* [total], owned: AdamW exp_avg_sq; NULL for SGD */
    unsigned char *decay;  /* [n_tensors], owned: 1 if weight decay applies to tensor i */
} me_optim;

/* Reads the optimizer and its hyperparameters from t (optimizer, beta1, beta2, eps, weight_decay,
 * decay_norm_and_bias, momentum; lr is given per step) and allocates zeroed state for the allocated
 * registry p. Decay mask: every tensor, except (unless t->decay_norm_and_bias) those flagged
 * ME_PARAM_NORM or ME_PARAM_BIAS. Fails with ME_ERR_CONFIG if p is not allocated or a
 * hyperparameter is out of range (PyTorch's checks: 0 <= beta1, beta2 < 1, eps >= 0 for AdamW;
 * momentum >= 0 for SGD; weight_decay >= 0; lr is the caller's), ME_ERR_NOMEM on allocation failure; *o is then safe to free.
 * The caller frees the state with me_optim_free. */
me_status me_optim_init(me_optim *o, const me_params *p, const me_train_config *t, me_error *err);

/* One update of p->data from p->grad at learning rate lr, then step++. Does not allocate and does
 * not touch p->grad. */
void me_optim_step(me_optim *o, me_params *p, double lr);

/* Learning rate for the update at 0-based step `step` (step 0 is the first update). Computed in
 * double, W = t->warmup, S = t->steps, lr = t->lr:
 *   constant: step < W ? lr*(step+1)/W : lr                    (no warmup when W <= 0)
 *   cosine:   step < W ? lr*(step+1)/W
 *                      : lr * 0.5 * (1 + cos(pi * q)),  q = min(1, (step - W) / max(1, S - W))
 *             so the first update after warmup uses lr and the rate reaches 0 at step S (the last
 *             update, step S-1, uses a small positive rate), as in HuggingFace's cosine schedule.
 *   noam:     lr * d_model^-0.5 * min((step+1)^-0.5, (step+1) * W^-1.5), W taken as 1 when W < 1;
 *             the peak is lr * (d_model * W)^-0.5 at step W-1 ("Attention Is All You Need", 5.3,
 *             with lr as a multiplier). */
double me_schedule_lr(const me_train_config *t, int d_model, long step);

/* Global L2 norm of all gradients, sum of squares accumulated in double. */
double me_grad_norm(const me_params *p);

/* As torch.nn.utils.clip_grad_norm_(params, max_norm) with norm_type 2: total = me_grad_norm(p);
 * c = max_norm / (total + 1e-6); if max_norm > 0 and c < 1, every gradient is multiplied by c.
 * Returns total, the norm before clipping. When total is NaN or Inf the gradients are left alone
 * (PyTorch would fill them with NaN); the caller should check the returned value with isfinite. */
double me_clip_grad_norm(me_params *p, double max_norm);

void me_optim_free(me_optim *o);

#endif
