/* Loaded into FreeRDP's shadow server (LD_PRELOAD) by `rampart-bench --desktop-only` to set
 * the x264 preset its H.264 encoder uses: FreeRDP 2.11 and 3.x hard-code "medium", which
 * cannot encode 1920x1080 full-screen change at 30 fps on one core. Other RDP servers choose
 * faster presets (xrdp 0.10's gfx.toml defaults to "ultrafast"); this lets the benchmark show
 * what the gateway and the browser do when the server is not the limit. FreeRDP asks libavutil
 * for the preset through av_opt_set; every other option passes through untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int av_opt_set(void *obj, const char *name, const char *val, int search_flags) {
    static int (*next)(void *, const char *, const char *, int);
    if (!next) next = (int (*)(void *, const char *, const char *, int))dlsym(RTLD_NEXT, "av_opt_set");
    const char *preset = getenv("RAMPART_X264_PRESET");
    if (preset && *preset && name && strcmp(name, "preset") == 0) val = preset;
    return next ? next(obj, name, val, search_flags) : -1;
}
