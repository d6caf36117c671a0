package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"plaza/internal/post"
)

// sizes are the requested dataset dimensions.
type sizes struct {
	Users, Follows, Posts, Likes, Comments int
}

// dataset is the generated graph, kept compact (int32 ids, unix
// microseconds) so that the full size fits in a few hundred MiB. Ids are
// 1-based and assigned here: the seeder inserts them explicitly into a
// fresh database.
type dataset struct {
	sizes
	seed uint64
	now  time.Time

	userCreated []int64   // [user-1] unix µs
	followees   [][]int32 // [user-1] whom the user follows
	followers   []int32   // [user-1] how many follow the user
	nFollows    int

	postAuthor    []int32   // [post-1]
	postCreated   []int64   // [post-1] unix µs, ascending with the id
	likesCount    []int32   // [post-1]
	commentsCount []int32   // [post-1]
	postsBy       [][]int32 // [user-1] the user's post ids, ascending

	likes    []uint64 // post<<32 | user, sorted
	comments []comment
	tags     []tagRow
}

type comment struct {
	post, author int32
	at           int64
}

type tagRow struct {
	tag  string
	post int32
}

const (
	day      = 24 * time.Hour
	postDays = 30 // posts are spread over the last 30 days
)

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// generate builds the whole dataset deterministically from seed.
func generate(sz sizes, seed uint64, now time.Time) *dataset {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	d := &dataset{sizes: sz, seed: seed, now: now.UTC().Truncate(time.Microsecond)}
	n := sz.Users

	// Users joined 31 to 120 days ago, in id order.
	start := micros(d.now.Add(-120 * day))
	span := micros(d.now.Add(-31*day)) - start
	d.userCreated = make([]int64, n)
	for i := range n {
		d.userCreated[i] = start + span*int64(i)/int64(max(n, 1))
	}

	// Follows: each user follows k distinct others. Half of the picks come
	// from a Zipf law over a random popularity order (a few accounts are
	// followed by a large share of the network), half are uniform.
	k := min(sz.Follows, n-1)
	popular := r.Perm(n) // rank -> user index
	var zipf *rand.Zipf
	if n > 1 {
		zipf = rand.NewZipf(r, 1.1, 50, uint64(n-1))
	}
	seen := make([]int32, n) // seen[j] == i+1: user i already follows j
	d.followees = make([][]int32, n)
	d.followers = make([]int32, n)
	for i := range n {
		list := make([]int32, 0, k)
		for len(list) < k {
			var j int
			if r.IntN(2) == 0 {
				j = popular[zipf.Uint64()]
			} else {
				j = r.IntN(n)
			}
			if j == i || seen[j] == int32(i+1) {
				continue
			}
			seen[j] = int32(i + 1)
			list = append(list, int32(j+1))
			d.followers[j]++
		}
		d.followees[i] = list
		d.nFollows += len(list)
	}

	// Posts: Posts per user, spread uniformly over the last 30 days, ids in
	// time order (as they would be had they been posted live).
	type p struct {
		author int32
		at     int64
	}
	all := make([]p, 0, n*sz.Posts)
	pStart := micros(d.now.Add(-postDays * day))
	pSpan := micros(d.now) - pStart - 1_000_000 // the newest a second ago
	for i := range n {
		for range sz.Posts {
			all = append(all, p{author: int32(i + 1), at: pStart + r.Int64N(pSpan)})
		}
	}
	slices.SortFunc(all, func(a, b p) int {
		if a.at != b.at {
			return cmp64(a.at, b.at)
		}
		return int(a.author - b.author)
	})
	np := len(all)
	d.postAuthor = make([]int32, np)
	d.postCreated = make([]int64, np)
	d.postsBy = make([][]int32, n)
	for idx, x := range all {
		d.postAuthor[idx] = x.author
		d.postCreated[idx] = x.at
		d.postsBy[x.author-1] = append(d.postsBy[x.author-1], int32(idx+1))
	}
	all = nil

	// Hashtags come from the post text (parsed as the service does).
	for id := 1; id <= np; id++ {
		title, content := postText(seed, id)
		for _, tag := range post.ParseHashtags(title + "\n" + content) {
			d.tags = append(d.tags, tagRow{tag: tag, post: int32(id)})
		}
	}

	// Likes: distinct (post, user) pairs; half of them on a Zipf-popular
	// set of posts, half uniform; nobody likes their own post.
	d.likesCount = make([]int32, np)
	d.commentsCount = make([]int32, np)
	if np > 0 && n > 1 {
		postRank := r.Perm(np)
		pz := rand.NewZipf(r, 1.1, 100, uint64(np-1))
		pick := func() int {
			if r.IntN(2) == 0 {
				return postRank[pz.Uint64()]
			}
			return r.IntN(np)
		}
		want := min(sz.Likes, np*(n-1))
		set := make(map[uint64]struct{}, want)
		d.likes = make([]uint64, 0, want)
		for len(d.likes) < want {
			pi := pick()
			u := int32(r.IntN(n) + 1)
			if u == d.postAuthor[pi] {
				continue
			}
			key := uint64(pi+1)<<32 | uint64(u)
			if _, dup := set[key]; dup {
				continue
			}
			set[key] = struct{}{}
			d.likes = append(d.likes, key)
			d.likesCount[pi]++
		}
		set = nil
		slices.Sort(d.likes)

		// Comments: same skew, any author, after the post; ids in time order.
		d.comments = make([]comment, 0, sz.Comments)
		for range sz.Comments {
			pi := pick()
			at := d.postCreated[pi] + r.Int64N(max(micros(d.now)-d.postCreated[pi], 1))
			d.comments = append(d.comments, comment{post: int32(pi + 1), author: int32(r.IntN(n) + 1), at: at})
			d.commentsCount[pi]++
		}
		slices.SortFunc(d.comments, func(a, b comment) int { return cmp64(a.at, b.at) })
	}
	return d
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// username is user00001 … (zero padded to at least five digits).
func username(id int) string { return fmt.Sprintf("user%05d", id) }

func email(id int) string { return username(id) + "@bench.test" }

var words = strings.Fields(`the a of to and in is it that for on with as was at by this be from or have an
are not but what all were when we there can your which their said if do will each about how up out them
then she many some so these would other into has more her two like him see time could no make than first
been its who now people my made over did down only way find use may water long little very after words
called just where most know get through back much before go good new write our used me man too any day
same right look think also around another came come work three word must because does part even place well
such here take why things help put years different away again off went old number great tell men say small
every found still between name should home big give air line set own under read last never us left end along
while might next sound below saw something thought both few those always looked show large often together
asked house don't world going want school important until form food keep children feet land side without boy
once animals life enough took sometimes four head above kind began almost live page got earth need far hand
high year mother light parts country father let night following picture being study second eyes soon times
story boys since white days ever paper hard near sentence better best across during today others however sure
means knew it's try told young miles sun ways thing whole hear example heard several change answer room sea
against top turned learn point city play toward five using himself usually`)

var tagPool = func() []string {
	base := strings.Fields(`golang sqlite postgres music travel food photography coffee running cycling books
movies football basketball art design cooking garden nature sunset hiking science space history news tech
startup linux opensource rust python javascript gaming cats dogs fitness yoga jazz rock climbing skiing
surf beach mountains city architecture fashion vintage diy crafts knitting baking vegan bbq wine beer tea
chess math physics astronomy birds ocean rain snow spring summer autumn winter weekend monday friday`)
	out := make([]string, 0, 300)
	out = append(out, base...)
	for i := 0; len(out) < 300; i++ {
		out = append(out, fmt.Sprintf("%s%d", base[i%len(base)], 2020+i/len(base)))
	}
	return out
}()

// postText is the title and content of post id, derived from (seed, id)
// alone so that it can be regenerated when the posts are written. About a
// quarter of the posts carry one to three hashtags.
func postText(seed uint64, id int) (title, content string) {
	r := rand.New(rand.NewPCG(seed^0x5151, uint64(id)))
	var b strings.Builder
	nw := 8 + r.IntN(40)
	for i := range nw {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	if r.IntN(4) == 0 {
		for range 1 + r.IntN(3) {
			// Squared uniform: a few tags are much more common than others.
			f := r.Float64()
			b.WriteString(" #")
			b.WriteString(tagPool[int(f*f*float64(len(tagPool)))])
		}
	}
	content = b.String()
	if r.IntN(10) < 3 {
		w := words[r.IntN(len(words))]
		title = strings.ToUpper(w[:1]) + w[1:] + " " + words[r.IntN(len(words))]
	}
	return title, content
}

// commentText is a short comment body.
func commentText(r *rand.Rand) string {
	var b strings.Builder
	for i := range 3 + r.IntN(15) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

var firstNames = strings.Fields(`Ada Alan Grace Linus Ken Barbara Dennis Margaret Edsger Donald Frances John Radia
Tim Katherine Niklaus Leslie Anita Guido Bjarne Sophie Hedy Joan Claude Alice Bob Carol Dave Erin Frank`)

var lastNames = strings.Fields(`Lovelace Turing Hopper Torvalds Thompson Liskov Ritchie Hamilton Dijkstra Knuth Allen
Backus Perlman Berners-Lee Johnson Wirth Lamport Borg Rossum Stroustrup Wilson Lamarr Clarke Shannon Smith Jones`)
