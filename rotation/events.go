package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// events writes a Kubernetes Event on the state's ConfigMap for every transition, so that `kubectl describe
// configmap` and `kubectl get events` show the rotation's history beside the audit log.
type events struct {
	client kubernetes.Interface
	ns     string
	name   string
	from   string
	log    *slog.Logger
}

func (e *events) emit(ctx context.Context, t Transition) {
	typ, reason := corev1.EventTypeNormal, "Rotation"+titleCase(string(t.Action))
	if t.Forced {
		typ, reason = corev1.EventTypeWarning, "RotationForced"
	}
	msg := fmt.Sprintf("%s: %s → %s (generation %d) by %s", t.Action, t.From, t.To, t.Generation, t.By)
	if t.Reason != "" {
		msg += ": " + t.Reason
	}
	now := metav1.NewTime(t.At)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: fmt.Sprintf("%s.%d.%x", e.name, t.Generation,
			t.At.UnixNano())},
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: e.ns, Name: e.name},
		Reason:         reason, Message: msg, Type: typ, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "meshca", Host: e.from},
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := e.client.CoreV1().Events(e.ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		e.log.Warn("rotation: the transition's Event was not written (the audit log has it)", "error", err)
	}
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
