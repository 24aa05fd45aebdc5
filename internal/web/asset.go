package web

// AssetURL returns the cache-busting URL of one of the embedded static
// files ("moat.css", "moat.js"), for another adapter that shares the
// site's look: the support console (internal/admin) links the same
// stylesheet.
func (h *Handler) AssetURL(name string) (string, error) { return h.assetURL(name) }
