/*
 * report.c — the human side of `hass eval` (eval.h): from OUT/results.json, the paper-style
 * Markdown table, three SVG plots (plain SVG 1.1, no scripts, fonts the browser has) and one
 * self-contained report.html with the tables and the plots inline.
 */
#include "eval/eval.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a growable string */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->n + (size_t)k)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
}

/* Text with &, <, > and " escaped for HTML/SVG. */
static void sb_esc(sbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

typedef struct {
    cJSON *root;
    const cJSON *methods, *families, *temps, *cells;
    int nm, nf, nt;
} results;

static const cJSON *cell_of(const results *r, int m, int f, int t) {
    const char *mn = cJSON_GetArrayItem(r->methods, m)->valuestring;
    const char *fn = cJSON_GetArrayItem(r->families, f)->valuestring;
    double tv = cJSON_GetArrayItem(r->temps, t)->valuedouble;
    const cJSON *c;
    cJSON_ArrayForEach(c, r->cells) {
        const cJSON *cm = cJSON_GetObjectItemCaseSensitive(c, "method");
        const cJSON *cf = cJSON_GetObjectItemCaseSensitive(c, "family");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(c, "temp");
        if (cJSON_IsString(cm) && cJSON_IsString(cf) && cJSON_IsNumber(ct) &&
            !strcmp(cm->valuestring, mn) && !strcmp(cf->valuestring, fn) &&
            fabs(ct->valuedouble - tv) < 1e-9)
            return c;
    }
    return NULL;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const char *const palette[] = {"#7f7f7f", "#1f77b4", "#d62728", "#2ca02c",
                                      "#9467bd", "#ff7f0e", "#8c564b", "#17becf"};
#define COLOR(m) palette[(m) % 8]

/* ---- the table (Markdown and HTML) ---- */
static void table(sbuf *b, const results *r, int html) {
    if (html)
        sb_printf(b, "<table><tr><th>method</th>");
    else
        sb_printf(b, "| method |");
    for (int t = 0; t < r->nt; t++)
        for (int f = 0; f < r->nf; f++) {
            const char *fn = cJSON_GetArrayItem(r->families, f)->valuestring;
            double tv = cJSON_GetArrayItem(r->temps, t)->valuedouble;
            if (html) {
                sb_printf(b, "<th>");
                sb_esc(b, fn);
                sb_printf(b, " T=%g</th>", tv);
            } else {
                sb_printf(b, " %s T=%g |", fn, tv);
            }
        }
    sb_printf(b, html ? "</tr>\n" : "\n|---|");
    if (!html)
        for (int i = 0; i < r->nt * r->nf; i++)
            sb_printf(b, "---:|");
    if (!html)
        sb_printf(b, "\n");
    for (int m = 0; m < r->nm; m++) {
        const char *mn = cJSON_GetArrayItem(r->methods, m)->valuestring;
        if (html) {
            sb_printf(b, "<tr><td>");
            sb_esc(b, mn);
            sb_printf(b, "</td>");
        } else {
            sb_printf(b, "| %s |", mn);
        }
        for (int t = 0; t < r->nt; t++)
            for (int f = 0; f < r->nf; f++) {
                const cJSON *c = cell_of(r, m, f, t);
                const cJSON *id = c ? cJSON_GetObjectItemCaseSensitive(c, "identical") : NULL;
                const char *mark = cJSON_IsFalse(id) ? " (outputs differ!)" : "";
                if (m == 0)
                    sb_printf(b, html ? "<td>%.1f tok/s</td>" : " %.1f tok/s |",
                              num(c, "tokens_per_s"));
                else
                    sb_printf(b, html ? "<td>%.2fx / %.2f%s</td>" : " %.2fx / %.2f%s |",
                              num(c, "speedup"), num(c, "tau"), mark);
            }
        sb_printf(b, html ? "</tr>\n" : "\n");
    }
    if (html)
        sb_printf(b, "</table>\n");
}

/* ---- plots ---- */
static void svg_open(sbuf *b, int w, int h, const char *title) {
    sb_printf(b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
              "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
              "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
              "<text x=\"%d\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">",
              w, h, w, h, w, h, w / 2);
    sb_esc(b, title);
    sb_printf(b, "</text>\n");
}

static void axis_y(sbuf *b, int x0, int y0, int y1, int x1, double vmax, const char *label) {
    sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", x0, y0, x0,
              y1);
    double step = vmax > 8 ? 2 : vmax > 4 ? 1 : vmax > 2 ? 0.5 : 0.25;
    for (double v = 0; v <= vmax + 1e-9; v += step) {
        double y = y0 - (y0 - y1) * v / vmax;
        sb_printf(b,
                  "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  x0, y, x1, y, x0 - 4, y + 4, v);
    }
    sb_printf(b, "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">",
              (y0 + y1) / 2, (y0 + y1) / 2);
    sb_esc(b, label);
    sb_printf(b, "</text>\n");
}

static void legend(sbuf *b, const results *r, int m0, int x, int y) {
    for (int m = m0; m < r->nm; m++) {
        sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>", x,
                  y + 18 * (m - m0), COLOR(m));
        sb_printf(b, "<text x=\"%d\" y=\"%d\">", x + 16, y + 10 + 18 * (m - m0));
        sb_esc(b, cJSON_GetArrayItem(r->methods, m)->valuestring);
        sb_printf(b, "</text>\n");
    }
}

/* Speedup over plain decoding per family (and all), one bar per draft, one panel per T. */
static void plot_speedup(sbuf *b, const results *r) {
    int nd = r->nm - 1, ph = 250, W = 120 + r->nf * (nd * 26 + 30) + 120, H = 40 + r->nt * ph;
    double vmax = 1.5;
    for (int m = 1; m < r->nm; m++)
        for (int f = 0; f < r->nf; f++)
            for (int t = 0; t < r->nt; t++)
                vmax = fmax(vmax, num(cell_of(r, m, f, t), "speedup"));
    vmax = ceil(vmax * 2) / 2;
    svg_open(b, W, H, "speedup over plain decoding");
    for (int t = 0; t < r->nt; t++) {
        int y0 = 40 + (t + 1) * ph - 40, y1 = 40 + t * ph + 30, x0 = 70;
        axis_y(b, x0, y0, y1, W - 130, vmax, "speedup (x)");
        double y1x = y0 - (y0 - y1) * 1.0 / vmax;
        sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"black\" "
                     "stroke-dasharray=\"4 3\"/>\n",
                  x0, y1x, W - 130, y1x);
        sb_printf(b, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">T = %g</text>\n", x0 + 8,
                  y1 - 4, cJSON_GetArrayItem(r->temps, t)->valuedouble);
        for (int f = 0; f < r->nf; f++) {
            int gx = x0 + 20 + f * (nd * 26 + 30);
            for (int m = 1; m < r->nm; m++) {
                double v = num(cell_of(r, m, f, t), "speedup");
                double y = y0 - (y0 - y1) * v / vmax;
                sb_printf(b,
                          "<rect x=\"%d\" y=\"%.1f\" width=\"22\" height=\"%.1f\" fill=\"%s\"/>"
                          "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">"
                          "%.2f</text>\n",
                          gx + (m - 1) * 26, y, y0 - y, COLOR(m), gx + (m - 1) * 26 + 11, y - 3,
                          v);
            }
            sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", gx + nd * 13, y0 + 16);
            sb_esc(b, cJSON_GetArrayItem(r->families, f)->valuestring);
            sb_printf(b, "</text>\n");
        }
    }
    legend(b, r, 1, W - 120, 60);
    sb_printf(b, "</svg>\n");
}

/* tau per item (each item one dot, jittered) with the mean as a bar, per family and draft, at the
 * first temperature. */
static void plot_tau(sbuf *b, const results *r) {
    int nd = r->nm - 1, W = 120 + r->nf * (nd * 40 + 30) + 120, H = 320, y0 = 280, y1 = 40;
    double vmax = 2;
    for (int m = 1; m < r->nm; m++)
        for (int f = 0; f < r->nf; f++) {
            const cJSON *v, *a = cJSON_GetObjectItemCaseSensitive(cell_of(r, m, f, 0),
                                                                   "tau_per_item");
            cJSON_ArrayForEach(v, a) vmax = fmax(vmax, v->valuedouble);
        }
    vmax = ceil(vmax);
    char title[96];
    snprintf(title, sizeof title, "tau (tokens per target forward) per prompt, T = %g",
             cJSON_GetArrayItem(r->temps, 0)->valuedouble);
    svg_open(b, W, H, title);
    axis_y(b, 70, y0, y1, W - 130, vmax, "tau");
    for (int f = 0; f < r->nf; f++) {
        int gx = 90 + f * (nd * 40 + 30);
        for (int m = 1; m < r->nm; m++) {
            const cJSON *c = cell_of(r, m, f, 0), *v;
            int cx = gx + (m - 1) * 40 + 15, i = 0;
            cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "tau_per_item")) {
                double y = y0 - (y0 - y1) * v->valuedouble / vmax;
                double jx = ((i * 37) % 21 - 10) * 0.9;
                sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\" "
                             "fill-opacity=\"0.5\"/>",
                          cx + jx, y, COLOR(m));
                i++;
            }
            double ym = y0 - (y0 - y1) * num(c, "tau") / vmax;
            sb_printf(b, "\n<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"black\" "
                         "stroke-width=\"2\"/>\n",
                      cx - 14, ym, cx + 14, ym);
        }
        sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", gx + nd * 20, y0 + 16);
        sb_esc(b, cJSON_GetArrayItem(r->families, f)->valuestring);
        sb_printf(b, "</text>\n");
    }
    legend(b, r, 1, W - 120, 60);
    sb_printf(b, "</svg>\n");
}

/* Acceptance rate by depth (cycles accepting >= d draft tokens / cycles), all families, first T. */
static void plot_accept(sbuf *b, const results *r) {
    int W = 560, H = 320, x0 = 70, x1 = 420, y0 = 280, y1 = 40, fall = r->nf - 1;
    int dmax = 1;
    for (int m = 1; m < r->nm; m++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(cell_of(r, m, fall, 0),
                                                          "accept_rate_by_depth");
        for (int d = 0; d < cJSON_GetArraySize(a); d++)
            if (cJSON_GetArrayItem(a, d)->valuedouble > 0.005 && d + 1 > dmax)
                dmax = d + 1;
    }
    svg_open(b, W, H, "acceptance rate by depth (all families)");
    axis_y(b, x0, y0, y1, x1, 1.0, "cycles accepting >= d drafts");
    for (int d = 1; d <= dmax; d++)
        sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n",
                  x0 + (x1 - x0) * (d - 0.5) / dmax, y0 + 16, d);
    sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">depth d</text>\n", (x0 + x1) / 2,
              y0 + 32);
    for (int m = 1; m < r->nm; m++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(cell_of(r, m, fall, 0),
                                                          "accept_rate_by_depth");
        sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                  COLOR(m));
        for (int d = 1; d <= dmax && d <= cJSON_GetArraySize(a); d++)
            sb_printf(b, "%.1f,%.1f ", x0 + (x1 - x0) * (d - 0.5) / dmax,
                      y0 - (y0 - y1) * cJSON_GetArrayItem(a, d - 1)->valuedouble);
        sb_printf(b, "\"/>\n");
    }
    legend(b, r, 1, x1 + 20, 60);
    sb_printf(b, "</svg>\n");
}

static hass_status write_sb(const char *dir, const char *name, sbuf *b, hass_err *err) {
    if (b->oom)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return hass_write_file_atomic(path, b->p ? b->p : "", b->n, err);
}

hass_status hass_eval_write_report(const char *out_dir, hass_err *err) {
    char path[1200], *txt = NULL;
    snprintf(path, sizeof path, "%s/results.json", out_dir);
    if (hass_read_file(path, &txt, NULL, err))
        return hass_err_prefix(err, err->code, path);
    results r = {0};
    r.root = cJSON_Parse(txt);
    free(txt);
    r.methods = cJSON_GetObjectItemCaseSensitive(r.root, "methods");
    r.families = cJSON_GetObjectItemCaseSensitive(r.root, "families");
    r.temps = cJSON_GetObjectItemCaseSensitive(r.root, "temps");
    r.cells = cJSON_GetObjectItemCaseSensitive(r.root, "cells");
    r.nm = cJSON_GetArraySize(r.methods), r.nf = cJSON_GetArraySize(r.families);
    r.nt = cJSON_GetArraySize(r.temps);
    if (!cJSON_IsArray(r.cells) || r.nm < 1 || r.nf < 1 || r.nt < 1) {
        cJSON_Delete(r.root);
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: not an eval result", path);
    }
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(r.root, "info");
    const cJSON *dist = cJSON_GetObjectItemCaseSensitive(r.root, "distribution");
    sbuf md = {0}, s1 = {0}, s2 = {0}, s3 = {0}, h = {0};
    /* Markdown */
    sb_printf(&md, "Speculative decoding: speedup over plain decoding / tau (tokens per target "
                   "forward); plain: tokens/s. %d new tokens per turn.\n\n",
              (int)num(r.root, "max_new"));
    table(&md, &r, 0);
    const cJSON *kv;
    if (cJSON_IsObject(info)) {
        sb_printf(&md, "\n");
        cJSON_ArrayForEach(kv, info) {
            char *v = cJSON_IsString(kv) ? NULL : cJSON_PrintUnformatted(kv);
            sb_printf(&md, "- %s: %s\n", kv->string, v ? v : kv->valuestring);
            free(v);
        }
    }
    /* plots */
    if (r.nm > 1) {
        plot_speedup(&s1, &r);
        plot_tau(&s2, &r);
        plot_accept(&s3, &r);
    }
    /* HTML */
    sb_printf(&h, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>hass eval</title>\n"
                  "<style>body{font-family:sans-serif;margin:2em;max-width:72em}"
                  "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
                  "padding:4px 8px;text-align:right}th{background:#eee}"
                  "td:first-child,th:first-child{text-align:left}</style></head><body>\n"
                  "<h1>hass eval</h1>\n<h2>Speedup / &tau;</h2>\n<p>Speculative rows: speedup "
                  "over plain decoding / tau (tokens per target forward); plain row: tokens/s. "
                  "%d new tokens per turn.</p>\n",
              (int)num(r.root, "max_new"));
    table(&h, &r, 1);
    if (r.nm > 1)
        sb_printf(&h, "<h2>Plots</h2>\n%s\n%s\n%s\n", s1.p ? s1.p : "", s2.p ? s2.p : "",
                  s3.p ? s3.p : "");
    if (cJSON_IsArray(dist) && cJSON_GetArraySize(dist) > 0) {
        sb_printf(&h, "<h2>Distribution check (T &gt; 0)</h2>\n<p>Empirical distribution of the "
                      "generated token at each position over repeated seeds, speculative vs "
                      "plain: total variation distance and the p-value of a chi-square test of "
                      "homogeneity (the same distribution gives p-values spread uniformly over "
                      "[0, 1]).</p>\n<table><tr><th>method</th><th>T</th><th>prompt</th>"
                      "<th>position</th><th>seeds</th><th>TV distance</th><th>p</th></tr>\n");
        const cJSON *e;
        cJSON_ArrayForEach(e, dist) {
            sb_printf(&h, "<tr><td>");
            const cJSON *mn = cJSON_GetObjectItemCaseSensitive(e, "method");
            sb_esc(&h, cJSON_IsString(mn) ? mn->valuestring : "?");
            sb_printf(&h, "</td><td>%g</td><td>%d</td><td>%d</td><td>%d</td><td>%.3f</td>"
                          "<td>%.3f</td></tr>\n",
                      num(e, "temp"), (int)num(e, "prompt"), (int)num(e, "position"),
                      (int)num(e, "reps"), num(e, "tv_distance"), num(e, "chi2_p"));
        }
        sb_printf(&h, "</table>\n");
    }
    if (cJSON_IsObject(info)) {
        sb_printf(&h, "<h2>Run</h2>\n<table>\n");
        cJSON_ArrayForEach(kv, info) {
            char *v = cJSON_IsString(kv) ? NULL : cJSON_PrintUnformatted(kv);
            sb_printf(&h, "<tr><td>");
            sb_esc(&h, kv->string);
            sb_printf(&h, "</td><td>");
            sb_esc(&h, v ? v : kv->valuestring);
            sb_printf(&h, "</td></tr>\n");
            free(v);
        }
        sb_printf(&h, "</table>\n");
    }
    sb_printf(&h, "</body></html>\n");
    hass_status st = write_sb(out_dir, "results.md", &md, err);
    if (!st && r.nm > 1)
        st = write_sb(out_dir, "speedup.svg", &s1, err);
    if (!st && r.nm > 1)
        st = write_sb(out_dir, "tau.svg", &s2, err);
    if (!st && r.nm > 1)
        st = write_sb(out_dir, "accept.svg", &s3, err);
    if (!st)
        st = write_sb(out_dir, "report.html", &h, err);
    free(md.p), free(s1.p), free(s2.p), free(s3.p), free(h.p);
    cJSON_Delete(r.root);
    return st;
}
