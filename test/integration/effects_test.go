package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// effect is one change changegate made to the cluster: an object created, a
// patch or update that changed an object, or an object deleted. A write the
// API server answered without changing anything (a patch to what is already
// there) is no effect.
type effect struct {
	verb      string // create, change or delete
	kind      string // the Go type, *v1.Job say
	namespace string
	name      string
}

// effectLog records every effect of every changegate manager the suite
// runs, and how many of their writes met a conflict.
type effectLog struct {
	mu        sync.Mutex
	all       []effect
	conflicts int
}

var effects = &effectLog{}

func (l *effectLog) add(e effect) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, e)
}

func (l *effectLog) conflict() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conflicts++
}

// mark is where the log stands; since(mark) is what came after.
func (l *effectLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func (l *effectLog) since(mark int) effectList {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append(effectList(nil), l.all[mark:]...)
}

func (l *effectLog) conflictCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conflicts
}

type effectList []effect

// count is how many effects of verb on objects of obj's type the list holds.
func (list effectList) count(verb string, obj client.Object) int {
	n := 0
	for _, e := range list {
		if e.verb == verb && e.kind == fmt.Sprintf("%T", obj) {
			n++
		}
	}
	return n
}

// of is what the list did to app a, counted by "verb kind env/name", each
// namespace named by its environment so that two apps compare.
func (list effectList) of(a *app) map[string]int {
	env := map[string]string{a.plansNS: "plans"}
	for name, ns := range a.namespace {
		env[ns] = name
	}
	counts := map[string]int{}
	for _, e := range list {
		if where, ok := env[e.namespace]; ok {
			counts[fmt.Sprintf("%s %s %s/%s", e.verb, e.kind, where, e.name)]++
		}
	}
	return counts
}

// errKilled is what every call of a killed manager's client returns.
var errKilled = errors.New("the manager was killed")

// killSwitch kills a manager right after one of its writes, as a crash
// would: from then on its client refuses every call, so whatever the
// manager was doing stops half done. The test then starts a new manager,
// with a new life.
type killSwitch struct {
	// after says whether the manager dies right after a write, given by
	// its effect, or, for a write of a plan's status, by the phase and
	// target it recorded (verb "status").
	after func(effect) bool
	died  chan struct{}
}

// life is one manager's: whether its client still works.
type life struct {
	mu     sync.Mutex
	killed bool
}

func (l *life) dead() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.killed
}

func (l *life) kill(k *killSwitch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.killed {
		l.killed = true
		k.died <- struct{}{}
	}
}

// countingClient returns a NewClientFunc for a changegate manager whose
// client records its effects in the effect log and, with a kill switch,
// dies when the switch says so.
func countingClient(k *killSwitch) client.NewClientFunc {
	return func(config *rest.Config, options client.Options) (client.Client, error) {
		c, err := client.NewWithWatch(config, options)
		if err != nil {
			return nil, err
		}
		l := &life{}
		// wrote records the outcome of a write and kills the manager if
		// the switch says so.
		wrote := func(err error, e effect, changed bool) error {
			switch {
			case apierrors.IsConflict(err):
				effects.conflict()
			case err == nil && changed:
				if e.verb != "status" {
					effects.add(e)
				}
				if k != nil && k.after(e) {
					l.kill(k)
				}
			}
			return err
		}
		describe := func(verb string, obj client.Object) effect {
			return effect{verb: verb, kind: fmt.Sprintf("%T", obj), namespace: obj.GetNamespace(), name: obj.GetName()}
		}
		// landed records a write whose answer the manager did not wait
		// for, because it was stopping, if the write changed obj all the
		// same, by what a fresh read shows.
		landed := func(ctx context.Context, err error, verb string, obj client.Object, changed func(current client.Object, err error) bool) bool {
			if !errors.Is(err, context.Canceled) || ctx.Err() == nil {
				return false
			}
			current := obj.DeepCopyObject().(client.Object)
			if changed(current, c.Get(context.Background(), client.ObjectKeyFromObject(obj), current)) {
				effects.add(describe(verb, obj))
			}
			return true
		}
		alive := func() error {
			if l.dead() {
				return errKilled
			}
			return nil
		}
		return interceptor.NewClient(c, interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if err := alive(); err != nil {
					return err
				}
				return c.Get(ctx, key, obj, opts...)
			},
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if err := alive(); err != nil {
					return err
				}
				return c.List(ctx, list, opts...)
			},
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if err := alive(); err != nil {
					return err
				}
				err := c.Create(ctx, obj, opts...)
				if landed(ctx, err, "create", obj, func(_ client.Object, err error) bool { return err == nil }) {
					return err
				}
				return wrote(err, describe("create", obj), true)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if err := alive(); err != nil {
					return err
				}
				err := c.Delete(ctx, obj, opts...)
				if landed(ctx, err, "delete", obj, func(current client.Object, err error) bool {
					return apierrors.IsNotFound(err) || (err == nil && current.GetDeletionTimestamp() != nil)
				}) {
					return err
				}
				return wrote(err, describe("delete", obj), true)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if err := alive(); err != nil {
					return err
				}
				before := version(obj)
				err := c.Update(ctx, obj, opts...)
				if landed(ctx, err, "change", obj, movedFrom(before)) {
					return err
				}
				return wrote(err, describe("change", obj), version(obj) != before)
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				if err := alive(); err != nil {
					return err
				}
				before := version(obj)
				err := c.Patch(ctx, obj, patch, opts...)
				if landed(ctx, err, "change", obj, movedFrom(before)) {
					return err
				}
				return wrote(err, describe("change", obj), version(obj) != before)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if err := alive(); err != nil {
					return err
				}
				err := c.SubResource(sub).Patch(ctx, obj, patch, opts...)
				return wrote(err, statusEffect(obj), true)
			},
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if err := alive(); err != nil {
					return err
				}
				err := c.SubResource(sub).Update(ctx, obj, opts...)
				return wrote(err, statusEffect(obj), true)
			},
		}), nil
	}
}

// movedFrom says, of a fresh read, whether the object's version moved from
// before.
func movedFrom(before string) func(current client.Object, err error) bool {
	return func(current client.Object, err error) bool { return err == nil && version(current) != before }
}

// version tells whether a write changed an object: the generation of a
// workload, which moves only with its spec (other actors may write its
// metadata meanwhile), the resourceVersion of anything else.
func version(obj client.Object) string {
	switch obj.(type) {
	case *appsv1.Deployment, *appsv1.StatefulSet, *appsv1.DaemonSet:
		return fmt.Sprint(obj.GetGeneration())
	}
	return obj.GetResourceVersion()
}

// statusEffect describes a status write: for a plan, the phase and target
// it now shows.
func statusEffect(obj client.Object) effect {
	e := effect{verb: "status", kind: fmt.Sprintf("%T", obj), namespace: obj.GetNamespace(), name: obj.GetName()}
	if plan, ok := obj.(*upgradesv1alpha1.UpgradePlan); ok {
		e.name = string(plan.Status.Phase) + "/" + plan.Status.CurrentTarget
	}
	return e
}

// workloadChanges counts the changes to Deployments, StatefulSets and
// DaemonSets.
func workloadChanges(list effectList) int {
	return list.count("change", &appsv1.Deployment{}) + list.count("change", &appsv1.StatefulSet{}) + list.count("change", &appsv1.DaemonSet{})
}
