// Package recoverytest holds the identity-document fixtures the recovery
// tests upload: real images and a minimal PDF that the content check must
// accept, and executables and archives it must refuse, whatever their
// file names say.
package recoverytest

import (
	"archive/zip"
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
)

// picture is a small colourful "scan", 64×40.
func picture() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 64, 40))
	for y := range 40 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 6), 90, 255})
		}
	}
	return img
}

// PNG is a real PNG image, as a phone photo of a passport would be (only
// smaller).
func PNG() []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, picture()); err != nil {
		panic(err) // encoding to memory does not fail
	}
	return b.Bytes()
}

// JPEG is a real JPEG image.
func JPEG() []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, picture(), &jpeg.Options{Quality: 80}); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// PDFMarker is a distinctive string inside PDF (to look for it at rest).
const PDFMarker = "PASSPORT-NUMBER-X7Q4-UNIQUE"

// PDF is a minimal well-formed PDF document.
func PDF() []byte {
	return []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n% " + PDFMarker + "\n" +
		"trailer << /Root 1 0 R >>\n%%EOF\n")
}

// Executable is the start of a Windows (PE) executable: what "passport.png"
// holds when someone renames a program.
func Executable() []byte {
	b := make([]byte, 512)
	copy(b, "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff")
	copy(b[0x40:], "This program cannot be run in DOS mode.")
	copy(b[0x80:], "PE\x00\x00")
	return b
}

// ELF is the start of a Linux executable.
func ELF() []byte {
	b := make([]byte, 256)
	copy(b, "\x7fELF\x02\x01\x01\x00")
	return b
}

// ZIP is a ZIP archive that holds a PNG: the container is what counts.
func ZIP() []byte {
	var b bytes.Buffer
	z := zip.NewWriter(&b)
	f, err := z.Create("passport.png")
	if err != nil {
		panic(err)
	}
	f.Write(PNG())
	if err := z.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}
