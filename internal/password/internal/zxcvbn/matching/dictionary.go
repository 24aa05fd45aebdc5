package matching

import (
	"sort"
	"strings"

	"github.com/moat-dev/moat/internal/password/internal/zxcvbn/match"
)

type dictionaryMatch struct {
	rankedDictionaries map[string]rankedDict
}

// rankedDict looks up the rank of a lower-case word (1 is the most common).
type rankedDict interface {
	rank(word string) (int, bool)
}

func (dm dictionaryMatch) Matches(password string) []*match.Match {
	var results []*match.Match

	for dictionaryName, rankedDict := range dm.rankedDictionaries {
		for i := range password {
			for delta := range password[i:] {
				j := i + delta
				word := strings.ToLower(password[i : j+1])
				if val, ok := rankedDict.rank(word); ok {
					matchDic := &match.Match{
						Pattern:        "dictionary",
						I:              i,
						J:              j,
						Token:          password[i : j+1],
						MatchedWord:    word,
						Rank:           val,
						DictionaryName: dictionaryName,
					}

					results = append(results, matchDic)
				}
			}
		}
	}

	match.Sort(results)
	return results
}

func (dm dictionaryMatch) withDict(name string, d rankedDict) dictionaryMatch {
	rd2 := make(map[string]rankedDict, len(dm.rankedDictionaries)+1)
	for k, v := range dm.rankedDictionaries {
		rd2[k] = v
	}
	rd2[name] = d
	return dictionaryMatch{rankedDictionaries: rd2}
}

// rankedDictionnary is a small ranked dictionary (the user inputs).
type rankedDictionnary map[string]int

func (d rankedDictionnary) rank(word string) (int, bool) {
	r, ok := d[word]
	return r, ok
}

func buildRankedDict(unrankedList []string) rankedDictionnary {
	result := make(rankedDictionnary)

	for i, v := range unrankedList {
		result[strings.ToLower(v)] = i + 1
	}

	return result
}

// sortedDict is a large ranked dictionary in little memory (moat's
// change): the word list itself, which is static data in the binary, and
// the positions of its words in sorted order, searched by bisection. Upstream
// builds a map per list instead, about 10 MB of heap for the bundled lists.
// It gives the same ranks as buildRankedDict for a list of distinct
// lower-case words, which the bundled lists are (a test pins it).
type sortedDict struct {
	words []string
	order []int32
}

func newSortedDict(words []string) sortedDict {
	order := make([]int32, len(words))
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(a, b int) bool { return words[order[a]] < words[order[b]] })
	return sortedDict{words: words, order: order}
}

func (d sortedDict) rank(word string) (int, bool) {
	k := sort.Search(len(d.order), func(k int) bool { return d.words[d.order[k]] >= word })
	if k < len(d.order) && d.words[d.order[k]] == word {
		return int(d.order[k]) + 1, true
	}
	return 0, false
}
