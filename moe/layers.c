/* layers.c — forward/backward kernels of the ranker's layers (see layers.h).
 *
 * The dense layer is the only place FLOPs concentrate, and it is a single
 * sgemm over the whole batch in both directions. The elementwise kernels are
 * plain loops the compiler vectorises; they are memory-bound and cheap next
 * to the sgemms.
 */
#include "moe/layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "common/tensor.h"

void moe_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int C,
                        int OC) {
    if (B <= 0) return;
    if (B == 1) { /* one row: a matrix-vector product, where sgemv beats sgemm's packing */
        if (b) memcpy(out, b, sizeof(float) * (size_t)OC);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, in, 1, b ? 1.0f : 0.0f, out, 1);
        return;
    }
    if (b) {
        for (int r = 0; r < B; r++) memcpy(out + (long)r * OC, b, sizeof(float) * (size_t)OC);
        mr_sgemm(0, 1, B, OC, C, 1.0f, in, w, 1.0f, out);
    } else {
        mr_sgemm(0, 1, B, OC, C, 1.0f, in, w, 0.0f, out);
    }
}

void moe_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int B, int C, int OC) {
    if (B <= 0) return;
    if (din) mr_sgemm(0, 0, B, C, OC, 1.0f, dout, w, 1.0f, din); /* (B,OC)@(OC,C) */
    if (dw) mr_sgemm(1, 0, OC, C, B, 1.0f, dout, in, 1.0f, dw);  /* (OC,B)@(B,C) */
    if (db)
        for (int r = 0; r < B; r++) {
            const float *d = dout + (long)r * OC;
            for (int o = 0; o < OC; o++) db[o] += d[o];
        }
}

void moe_relu_forward(float *out, const float *in, long n) {
    for (long i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void moe_relu_backward(float *din, const float *dout, const float *out, long n) {
    for (long i = 0; i < n; i++)
        if (out[i] > 0.0f) din[i] += dout[i];
}

void moe_swish_forward(float *out, const float *in, long n) {
    for (long i = 0; i < n; i++) out[i] = in[i] * moe_sigmoidf(in[i]);
}

void moe_swish_backward(float *din, const float *dout, const float *in, long n) {
    for (long i = 0; i < n; i++) {
        float s = moe_sigmoidf(in[i]);
        din[i] += dout[i] * (s + in[i] * s * (1.0f - s));
    }
}

#define MOE_NORM_EPS 1e-5f

void moe_rownorm_forward(float *out, float *mean, float *rstd, const float *in, const float *g,
                         const float *b, int B, int C) {
    for (int r = 0; r < B; r++) {
        const float *x = in + (long)r * C;
        float *y = out + (long)r * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += ((double)x[c] - m) * ((double)x[c] - m);
        v /= C;
        float rs = (float)(1.0 / sqrt(v + MOE_NORM_EPS));
        for (int c = 0; c < C; c++) y[c] = g[c] * (x[c] - (float)m) * rs + b[c];
        mean[r] = (float)m;
        rstd[r] = rs;
    }
}

void moe_rownorm_backward(float *din, float *dg, float *db, const float *dout, const float *in,
                          const float *mean, const float *rstd, const float *g, int B, int C) {
    for (int r = 0; r < B; r++) {
        const float *x = in + (long)r * C, *dy = dout + (long)r * C;
        float m = mean[r], rs = rstd[r];
        /* xhat = (x - m) rs; dxhat = dy g;
         * dx = rs (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) */
        double s1 = 0, s2 = 0;
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - m) * rs, dxh = dy[c] * g[c];
            s1 += dxh;
            s2 += dxh * xh;
            if (dg) dg[c] += dy[c] * xh;
            if (db) db[c] += dy[c];
        }
        float ms1 = (float)(s1 / C), ms2 = (float)(s2 / C);
        if (din) {
            float *dx = din + (long)r * C;
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - m) * rs;
                dx[c] += rs * (dy[c] * g[c] - ms1 - xh * ms2);
            }
        }
    }
}

void moe_softmax_forward(float *probs, const float *logits, int B, int C) {
    for (int r = 0; r < B; r++) {
        const float *l = logits + (long)r * C;
        float *p = probs + (long)r * C;
        float mx = l[0];
        for (int c = 1; c < C; c++) mx = l[c] > mx ? l[c] : mx;
        float s = 0;
        for (int c = 0; c < C; c++) s += (p[c] = expf(l[c] - mx));
        float inv = 1.0f / s;
        for (int c = 0; c < C; c++) p[c] *= inv;
    }
}

void moe_softmax_backward(float *dlogits, const float *dprobs, const float *probs, int B, int C) {
    for (int r = 0; r < B; r++) {
        const float *p = probs + (long)r * C, *dp = dprobs + (long)r * C;
        float *dl = dlogits + (long)r * C;
        float dot = 0;
        for (int c = 0; c < C; c++) dot += p[c] * dp[c];
        for (int c = 0; c < C; c++) dl[c] += p[c] * (dp[c] - dot);
    }
}

void moe_embbag_forward(float *out, int ostride, const float *table, const uint32_t *rows,
                        const uint32_t *off, int B, int D, int mean) {
    for (int b = 0; b < B; b++) {
        float *o = out + (long)b * ostride;
        memset(o, 0, sizeof(float) * (size_t)D);
        uint32_t n = off[b + 1] - off[b];
        for (uint32_t j = off[b]; j < off[b + 1]; j++) {
            const float *t = table + (long)rows[j] * D;
            for (int d = 0; d < D; d++) o[d] += t[d];
        }
        if (mean && n > 1) {
            float inv = 1.0f / (float)n;
            for (int d = 0; d < D; d++) o[d] *= inv;
        }
    }
}

void moe_embbag_backward(float *drows, const float *dout, int dstride, const uint32_t *off, int B,
                         int D, int mean) {
    for (int b = 0; b < B; b++) {
        const float *g = dout + (long)b * dstride;
        uint32_t n = off[b + 1] - off[b];
        float sc = (mean && n > 1) ? 1.0f / (float)n : 1.0f;
        for (uint32_t j = off[b]; j < off[b + 1]; j++) {
            float *d = drows + (long)j * D;
            for (int k = 0; k < D; k++) d[k] = g[k] * sc;
        }
    }
}

double moe_bce_forward(const float *logit, const float *y, const float *mask, int B) {
    double s = 0;
    for (int b = 0; b < B; b++) {
        float m = mask ? mask[b] : 1.0f;
        if (m == 0.0f) continue;
        double z = logit[b];
        /* log(1 + e^-|z|) + max(z, 0) - z y */
        double l = log1p(exp(-fabs(z))) + (z > 0 ? z : 0) - z * y[b];
        s += m * l;
    }
    return s;
}

void moe_bce_backward(float *dlogit, const float *logit, const float *y, const float *mask,
                      float scale, int B) {
    for (int b = 0; b < B; b++) {
        float m = mask ? mask[b] : 1.0f;
        dlogit[b] += scale * m * (moe_sigmoidf(logit[b]) - y[b]);
    }
}

double moe_mse_forward(const float *pred, const float *y, const float *mask, int B) {
    double s = 0;
    for (int b = 0; b < B; b++) {
        float m = mask ? mask[b] : 1.0f;
        double d = (double)pred[b] - y[b];
        s += m * d * d;
    }
    return s;
}

void moe_mse_backward(float *dpred, const float *pred, const float *y, const float *mask,
                      float scale, int B) {
    for (int b = 0; b < B; b++) {
        float m = mask ? mask[b] : 1.0f;
        dpred[b] += scale * m * 2.0f * (pred[b] - y[b]);
    }
}
