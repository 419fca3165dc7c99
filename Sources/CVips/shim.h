#ifndef CVIPS_SHIM_H
#define CVIPS_SHIM_H
#include <vips/vips.h>

// libvips' operations take optional arguments as C varargs, which Swift cannot call: these
// wrappers fix the arguments the media store uses.

/// Opens an image for reading its header only (pixels are decoded later, if ever).
static inline VipsImage *cvips_header_from_file(const char *path) {
    return vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
}

/// A thumbnail of the image in `path` fitting `max_side` x `max_side`, EXIF orientation applied,
/// never enlarged; only the first frame of animations.
static inline int cvips_thumbnail(const char *path, VipsImage **out, int max_side) {
    return vips_thumbnail(path, out, max_side, "height", max_side, "size", VIPS_SIZE_DOWN,
                          "no_rotate", FALSE, NULL);
}

/// JPEG bytes of `in`, metadata stripped; free `*buf` with g_free.
static inline int cvips_jpegsave(VipsImage *in, void **buf, size_t *len, int quality) {
    return vips_jpegsave_buffer(in, buf, len, "Q", quality, "strip", TRUE, NULL);
}

/// A `width` x `height` RGB image with a diagonal gradient, encoded as `format` (".png",
/// ".jpg", ".webp", ".gif"), for tests and the benchmark; free `*buf` with g_free.
static inline int cvips_test_image(int width, int height, const char *format, void **buf, size_t *len) {
    VipsImage *xyz = NULL, *sum = NULL, *scaled = NULL, *rgb = NULL, *out = NULL;
    VipsImage *bands[3];
    int rc = -1;
    if (vips_xyz(&xyz, width, height, NULL)) goto done;
    if (vips_bandmean(xyz, &sum, NULL)) goto done;
    if (vips_linear1(sum, &scaled, 255.0 / (double)(width > height ? width : height), 0.0, "uchar", TRUE, NULL)) goto done;
    bands[0] = scaled; bands[1] = scaled; bands[2] = scaled;
    if (vips_bandjoin(bands, &rgb, 3, NULL)) goto done;
    if (vips_copy(rgb, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL)) goto done;
    rc = vips_image_write_to_buffer(out, format, buf, len, NULL);
done:
    if (xyz) g_object_unref(xyz);
    if (sum) g_object_unref(sum);
    if (scaled) g_object_unref(scaled);
    if (rgb) g_object_unref(rgb);
    if (out) g_object_unref(out);
    return rc;
}

static inline void cvips_unref(VipsImage *image) {
    g_object_unref(image);
}
#endif
