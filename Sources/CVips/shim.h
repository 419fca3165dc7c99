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

static inline void cvips_unref(VipsImage *image) {
    g_object_unref(image);
}
#endif
