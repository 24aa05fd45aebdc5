package frequency

import (
	"strings"
	"testing"
)

// The matcher looks words up by bisection in each list and takes a word's
// rank from its position, which gives upstream's ranks only if every word
// is lower case and appears once in its list.
func TestListsAreLowerCaseAndDistinct(t *testing.T) {
	if len(Lists) != 6 {
		t.Fatalf("%d lists, want upstream's 6", len(Lists))
	}
	for _, l := range Lists {
		if len(l.Words) == 0 {
			t.Errorf("%s: empty", l.Name)
		}
		seen := make(map[string]bool, len(l.Words))
		for _, w := range l.Words {
			if w != strings.ToLower(w) {
				t.Errorf("%s: %q is not lower case", l.Name, w)
			}
			if seen[w] {
				t.Errorf("%s: %q appears twice", l.Name, w)
			}
			seen[w] = true
		}
	}
}
