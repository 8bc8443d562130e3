/* RAII handles for GLib / GStreamer references.
 *
 * GRef<T> owns one reference. Adopt a transfer-full return with
 * adoptGRef(), take a new reference on a borrowed pointer with
 * GRef<T>::ref(). The per-type traits say how to ref and unref. */
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <memory>
#include <utility>

namespace xdn {

template <typename T> struct GRefTraits {
  /* Default: any GObject. */
  static T *ref (T *p) { return static_cast<T *> (g_object_ref (p)); }
  static void unref (T *p) { g_object_unref (p); }
};

#define XDN_MINI_OBJECT_TRAITS(Type, reffn, unreffn)                     \
  template <> struct GRefTraits<Type> {                                  \
    static Type *ref (Type *p) { return reffn (p); }                     \
    static void unref (Type *p) { unreffn (p); }                         \
  };

XDN_MINI_OBJECT_TRAITS (GstBuffer, gst_buffer_ref, gst_buffer_unref)
XDN_MINI_OBJECT_TRAITS (GstCaps, gst_caps_ref, gst_caps_unref)
XDN_MINI_OBJECT_TRAITS (GstEvent, gst_event_ref, gst_event_unref)
XDN_MINI_OBJECT_TRAITS (GstMessage, gst_message_ref, gst_message_unref)
XDN_MINI_OBJECT_TRAITS (GstSample, gst_sample_ref, gst_sample_unref)
XDN_MINI_OBJECT_TRAITS (GstPromise, gst_promise_ref, gst_promise_unref)
XDN_MINI_OBJECT_TRAITS (GBytes, g_bytes_ref, g_bytes_unref)
XDN_MINI_OBJECT_TRAITS (GMainLoop, g_main_loop_ref, g_main_loop_unref)
XDN_MINI_OBJECT_TRAITS (GMainContext, g_main_context_ref, g_main_context_unref)
XDN_MINI_OBJECT_TRAITS (GSource, g_source_ref, g_source_unref)
#undef XDN_MINI_OBJECT_TRAITS

template <> struct GRefTraits<GstElement> {
  static GstElement *ref (GstElement *p) { return GST_ELEMENT (gst_object_ref (p)); }
  static void unref (GstElement *p) { gst_object_unref (p); }
};
template <> struct GRefTraits<GstPad> {
  static GstPad *ref (GstPad *p) { return GST_PAD (gst_object_ref (p)); }
  static void unref (GstPad *p) { gst_object_unref (p); }
};
template <> struct GRefTraits<GstBus> {
  static GstBus *ref (GstBus *p) { return GST_BUS (gst_object_ref (p)); }
  static void unref (GstBus *p) { gst_object_unref (p); }
};

template <typename T> class GRef {
public:
  GRef () = default;
  GRef (std::nullptr_t) {}
  GRef (const GRef &o) : ptr_ (o.ptr_ ? GRefTraits<T>::ref (o.ptr_) : nullptr) {}
  GRef (GRef &&o) noexcept : ptr_ (std::exchange (o.ptr_, nullptr)) {}
  ~GRef () { reset (); }

  GRef &operator= (GRef o) noexcept { std::swap (ptr_, o.ptr_); return *this; }

  /* Takes ownership of a reference the caller already holds. */
  static GRef adopt (T *p) { GRef r; r.ptr_ = p; return r; }
  /* Takes a new reference on a borrowed pointer. */
  static GRef ref (T *p) { return adopt (p ? GRefTraits<T>::ref (p) : nullptr); }

  T *get () const { return ptr_; }
  T *operator-> () const { return ptr_; }
  explicit operator bool () const { return ptr_ != nullptr; }
  /* Gives the reference away (transfer full). */
  T *release () { return std::exchange (ptr_, nullptr); }
  void reset () { if (ptr_) GRefTraits<T>::unref (std::exchange (ptr_, nullptr)); }

private:
  T *ptr_ = nullptr;
};

template <typename T> GRef<T> adoptGRef (T *p) { return GRef<T>::adopt (p); }

/* Owned C strings and other g_free'd memory. */
struct GFreeDeleter { void operator() (gpointer p) const { g_free (p); } };
template <typename T> using GUniquePtr = std::unique_ptr<T, GFreeDeleter>;

}  // namespace xdn
