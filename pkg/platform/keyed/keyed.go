// Package keyed serialises work per key (a workspace id, a subject).
package keyed

import "sync"

// Mutex serialises work per key. The zero value is
// ready to use.
type Mutex struct {
	mu    sync.Mutex
	locks map[string]*entry
}

type entry struct {
	mu   sync.Mutex
	refs int
}

// Lock waits for key and returns its unlock.
func (k *Mutex) Lock(key string) (unlock func()) {
	e := k.acquire(key)
	e.mu.Lock()
	return func() { e.mu.Unlock(); k.release(key, e) }
}

// TryLock takes key if nobody holds it.
func (k *Mutex) TryLock(key string) (unlock func(), ok bool) {
	e := k.acquire(key)
	if !e.mu.TryLock() {
		k.release(key, e)
		return nil, false
	}
	return func() { e.mu.Unlock(); k.release(key, e) }, true
}

func (k *Mutex) acquire(key string) *entry {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks == nil {
		k.locks = map[string]*entry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &entry{}
		k.locks[key] = e
	}
	e.refs++
	return e
}

func (k *Mutex) release(key string, e *entry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(k.locks, key)
	}
}
