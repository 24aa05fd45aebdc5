package recovery

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"

	"github.com/moat-dev/moat/internal/apperr"
)

// Media types of the identity documents accepted.
const (
	TypeJPEG = "image/jpeg"
	TypePNG  = "image/png"
	TypePDF  = "application/pdf"
)

// maxImageSide bounds an image's width and height: a real photo or scan
// is far smaller, and a staff member's browser should not be asked to
// decode a picture the size of a decompression bomb.
const maxImageSide = 20000

// pdfTail is how far from the end of a PDF its "%%EOF" marker may be
// (writers add a line break or a few bytes of padding after it).
const pdfTail = 1024

var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	jpegEOI   = []byte{0xFF, 0xD9}
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
)

var errDocumentType = apperr.Field(apperr.Invalid, "document",
	"This file is not a JPEG, PNG or PDF document, whatever its name says. "+
		"Upload a photo or scan of your identity document as a JPEG, PNG or PDF file of at most 10 MB.")

var errDocumentEmpty = apperr.Field(apperr.Invalid, "document",
	"Choose a photo or scan of your identity document (a JPEG, PNG or PDF file of at most 10 MB).")

var errDocumentTooLarge = apperr.Field(apperr.TooLarge, "document",
	"This file is larger than 10 MB. Upload a smaller photo or scan of your identity document (JPEG, PNG or PDF).")

// SniffDocument decides what an uploaded identity document is by its
// content, never its name: a JPEG or PNG image that the standard decoders
// read (and, for PNG, whose chunks are whole and end with IEND; for JPEG,
// that has an end-of-image marker), or a PDF with a "%PDF-1.x" (or 2.x)
// header and a "%%EOF" marker near its end. It returns the media type, or
// an *apperr.Error (Invalid for anything else or nothing, TooLarge over
// MaxDocumentBytes).
func SniffDocument(data []byte) (string, error) {
	switch {
	case len(data) == 0:
		return "", errDocumentEmpty
	case len(data) > MaxDocumentBytes:
		return "", errDocumentTooLarge
	case bytes.HasPrefix(data, jpegMagic):
		if isJPEG(data) {
			return TypeJPEG, nil
		}
	case bytes.HasPrefix(data, pngMagic):
		if isPNG(data) {
			return TypePNG, nil
		}
	case bytes.HasPrefix(data, []byte("%PDF-")):
		if isPDF(data) {
			return TypePDF, nil
		}
	}
	return "", errDocumentType
}

func sensibleSize(c image.Config) bool {
	return c.Width > 0 && c.Height > 0 && c.Width <= maxImageSide && c.Height <= maxImageSide
}

func isJPEG(data []byte) bool {
	c, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil || !sensibleSize(c) {
		return false
	}
	// The end-of-image marker: a cut-off upload lacks it. (Phones may
	// append data after it, so it need not be last.)
	return bytes.LastIndex(data, jpegEOI) > len(jpegMagic)
}

// isPNG checks the decoder's view of the header and walks the chunks:
// each complete with a correct CRC, IHDR first, IEND last.
func isPNG(data []byte) bool {
	c, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil || !sensibleSize(c) {
		return false
	}
	rest := data[len(pngMagic):]
	first := true
	for len(rest) >= 12 {
		n := binary.BigEndian.Uint32(rest[:4])
		if n > uint32(len(rest)-12) {
			return false
		}
		typ := rest[4:8]
		body := rest[8 : 8+n]
		sum := binary.BigEndian.Uint32(rest[8+n : 12+n])
		h := crc32.NewIEEE()
		h.Write(typ)
		h.Write(body)
		if h.Sum32() != sum {
			return false
		}
		if first && string(typ) != "IHDR" {
			return false
		}
		first = false
		rest = rest[12+n:]
		if string(typ) == "IEND" {
			return true
		}
	}
	return false
}

func isPDF(data []byte) bool {
	// "%PDF-1.x" or "%PDF-2.x": the header, at the very start.
	if len(data) < 8 || (data[5] != '1' && data[5] != '2') || data[6] != '.' || data[7] < '0' || data[7] > '9' {
		return false
	}
	tail := data[max(8, len(data)-pdfTail):]
	return bytes.Contains(tail, []byte("%%EOF"))
}
