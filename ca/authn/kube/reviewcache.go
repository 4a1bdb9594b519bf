package kube

import (
	"container/list"
	"sync"
	"time"
)

// reviewCache is a size-bounded LRU of review results keyed by token hash, each with its own deadline.
type reviewCache struct {
	mu    sync.Mutex
	max   int
	items map[string]*list.Element
	order *list.List // front: most recently used
}

type cacheEntry struct {
	key     string
	r       *reviewResult
	expires time.Time
}

func newReviewCache(size int) *reviewCache {
	return &reviewCache{max: size, items: map[string]*list.Element{}, order: list.New()}
}

func (c *reviewCache) get(key string, now time.Time) (*reviewResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.r, true
}

func (c *reviewCache) put(key string, r *reviewResult, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value = &cacheEntry{key: key, r: r, expires: expires}
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, r: r, expires: expires})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

func (c *reviewCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
