package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/provisioner/internal/app"
)

// Swarm is the provisioner's runtime on Docker Swarm: a workspace is a
// service with one replica (stop scales it to 0, so the service, its spec
// hash and its placement survive; delete removes it), on an attachable
// overlay network of its own. The provisioner and Traefik are attached to
// every workspace network (Attach), so each reaches each workspace while
// workspaces reach neither each other nor the other services: an overlay
// has no equivalent of the bridge's icc=false, so one shared overlay would
// let a workspace open another's IDE directly, past Traefik's sign-in.
//
// The container mode's parts that need the workspace's container or home
// volume (heartbeat files, archives) run on the engine the provisioner
// talks to: with several nodes they work for workspaces on that node only
// (docs/scale.md). Swarm picks the node of a first start; a stop pins the
// service to the node that holds its home volume (node-local volumes).
type Swarm struct {
	*Runtime
	// Attach names the containers joined to every workspace network: the
	// provisioner's own (it probes health) and Traefik's (it routes).
	Attach []string
	// Unschedulable is how long a task may wait for a node before the start
	// fails (its pinned node is down or drained).
	Unschedulable time.Duration
}

// NewSwarm returns the Swarm runtime over r's client and options.
func NewSwarm(r *Runtime, attach []string) *Swarm {
	c := *r
	c.o.noHardLimit = true // a service spec has no storage size option
	return &Swarm{Runtime: &c, Attach: attach, Unschedulable: 15 * time.Second}
}

// Scoped returns the Swarm runtime for one installation.
func (w *Swarm) Scoped(installation string) *Swarm {
	c := *w
	c.Runtime = w.Runtime.Scoped(installation)
	return &c
}

// Ping also checks that the engine is a Swarm manager: workers cannot
// create services.
func (w *Swarm) Ping(ctx context.Context) error {
	if err := w.Runtime.Ping(ctx); err != nil {
		return err
	}
	info, err := w.cli.Info(ctx)
	if err != nil {
		return fmt.Errorf("docker info: %w", err)
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Swarm.ControlAvailable {
		return fmt.Errorf("BERTH_RUNTIME=swarm needs a Swarm manager, but this engine is %q (manager: %t); run docker swarm init or point DOCKER_HOST at a manager",
			info.Swarm.LocalNodeState, info.Swarm.ControlAvailable)
	}
	return nil
}

// SwarmNetwork is the overlay network of one workspace.
func SwarmNetwork(name, id string) string { return ContainerName(name, id) }

// service returns the workspace's service in this installation, or nil.
func (w *Swarm) service(ctx context.Context, id string) (*swarm.Service, error) {
	list, err := w.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: w.owned(id)})
	if err != nil {
		return nil, fmt.Errorf("list services of %s: %w", id, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	s := &list[0] // Berth makes one per workspace
	if m := s.Spec.Mode.Replicated; m == nil || m.Replicas == nil {
		// Berth makes only replicated services: this one was made by hand
		// with the workspace's labels.
		return nil, &app.Failure{Code: "service_invalid", Message: fmt.Sprintf("service %s carries the workspace's labels but is not a replicated service; remove it (docker service rm %s)", s.Spec.Name, s.ID)}
	}
	return s, nil
}

// serviceSpec translates the container shape into a one-replica service.
func (w *Swarm) serviceSpec(s app.Spec, sh shape, netID string, replicas uint64, pin []string) swarm.ServiceSpec {
	grace := w.o.StopTimeout
	mounts := make([]mount.Mount, len(sh.host.Mounts))
	copy(mounts, sh.host.Mounts)
	for i := range mounts {
		if mounts[i].Type == mount.TypeVolume {
			// Made on whichever node runs the first task, labelled like the
			// container mode's volumes.
			mounts[i].VolumeOptions = &mount.VolumeOptions{Labels: w.labels(s)}
		}
	}
	res := sh.host.Resources
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: ContainerName(s.Name, s.ID), Labels: sh.cfg.Labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image: sh.cfg.Image, Labels: sh.cfg.Labels, Args: sh.cfg.Cmd, Hostname: sh.cfg.Hostname,
				Env: sh.cfg.Env, User: sh.cfg.User, Mounts: mounts, StopGracePeriod: &grace,
				CapabilityDrop: sh.host.CapDrop, CapabilityAdd: sh.host.CapAdd,
				// Honoured by engines with API 1.46 and later (Docker 27);
				// older ones ignore it (docs/scale.md).
				Privileges: &swarm.Privileges{NoNewPrivileges: true},
			},
			Resources: &swarm.ResourceRequirements{Limits: &swarm.Limit{NanoCPUs: res.NanoCPUs, MemoryBytes: res.Memory, Pids: *res.PidsLimit}},
			// Like the container mode: the reconciler, not the engine,
			// restarts a dead workspace, after validating its spec again.
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
			Placement:     &swarm.Placement{Constraints: pin},
			// The container mode's log rotation, on whichever node runs it.
			LogDriver: &swarm.Driver{Name: sh.host.LogConfig.Type, Options: sh.host.LogConfig.Config},
			Networks:  []swarm.NetworkAttachmentConfig{{Target: netID}},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		// One address per task, no virtual IP: Traefik routes to the task.
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
}

// EnsureCreated defines the workspace's service at 0 replicas, with its
// network, so a first start only scales it.
func (w *Swarm) EnsureCreated(ctx context.Context, s app.Spec) error {
	_, err := w.ensureService(ctx, s, 0)
	return err
}

// ensureService creates or updates the service to match s; replicas is
// what a new service gets (an existing one keeps its count unless the
// caller scales it). A service made from another spec gets the new one.
func (w *Swarm) ensureService(ctx context.Context, s app.Spec, replicas uint64) (*swarm.Service, error) {
	if err := w.scoped(ctx); err != nil {
		return nil, err
	}
	sh, err := w.shape(ctx, s)
	if err != nil {
		return nil, err
	}
	netID, err := w.ensureOverlay(ctx, s)
	if err != nil {
		return nil, err
	}
	svc, err := w.service(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	if svc == nil {
		_, err := w.cli.ServiceCreate(ctx, w.serviceSpec(s, sh, netID, replicas, nil), swarm.ServiceCreateOptions{})
		if err != nil && !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
			if cerrdefs.IsInvalidArgument(err) {
				return nil, &app.Failure{Code: "container_invalid", Message: "the engine refused the workspace's service: " + err.Error()}
			}
			return nil, fmt.Errorf("create service for %s: %w", s.Name, err)
		}
		// Created by us or, a moment ago, by another worker.
		if svc, err = w.service(ctx, s.ID); err != nil || svc == nil {
			return nil, errors.Join(fmt.Errorf("service of %s vanished after its creation", s.Name), err)
		}
		return svc, nil
	}
	if svc.Spec.Labels[LabelSpec] == sh.hash {
		return svc, nil
	}
	spec := w.serviceSpec(s, sh, netID, *svc.Spec.Mode.Replicated.Replicas, w.pin(ctx, svc))
	if err := w.update(ctx, svc, spec); err != nil {
		return nil, fmt.Errorf("replace service of %s (spec changed): %w", s.Name, err)
	}
	return w.service(ctx, s.ID)
}

// update writes spec over svc, retrying once on a version conflict (the
// engine's optimistic lock) with the service read again.
func (w *Swarm) update(ctx context.Context, svc *swarm.Service, spec swarm.ServiceSpec) error {
	_, err := w.cli.ServiceUpdate(ctx, svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{})
	if err != nil && strings.Contains(err.Error(), "update out of sequence") {
		fresh, _, ierr := w.cli.ServiceInspectWithRaw(ctx, svc.ID, swarm.ServiceInspectOptions{})
		if ierr != nil {
			return fmt.Errorf("inspect service %s: %w", svc.Spec.Name, ierr)
		}
		_, err = w.cli.ServiceUpdate(ctx, svc.ID, fresh.Version, spec, swarm.ServiceUpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("update service %s: %w", svc.Spec.Name, err)
	}
	return nil
}

// pin is the placement that keeps svc on the node holding its home
// volume: the node of its newest task, once one has run. Before that,
// Swarm places it freely.
func (w *Swarm) pin(ctx context.Context, svc *swarm.Service) []string {
	if p := svc.Spec.TaskTemplate.Placement; p != nil && len(p.Constraints) > 0 {
		return p.Constraints
	}
	tasks, err := w.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID))})
	if err != nil {
		return nil
	}
	ran := slices.DeleteFunc(tasks, func(t swarm.Task) bool {
		return t.NodeID == "" || t.Status.ContainerStatus == nil || t.Status.ContainerStatus.ContainerID == ""
	})
	if len(ran) == 0 {
		return nil
	}
	return []string{"node.id==" + newest(ran).NodeID}
}

// scale sets svc's replicas, pinned to its volume's node; force asks for a
// new task even if the count does not change.
func (w *Swarm) scale(ctx context.Context, svc *swarm.Service, replicas uint64, force bool) error {
	spec := svc.Spec
	spec.Mode.Replicated.Replicas = &replicas
	if force {
		spec.TaskTemplate.ForceUpdate++
	}
	spec.TaskTemplate.Placement = &swarm.Placement{Constraints: w.pin(ctx, svc)}
	return w.update(ctx, svc, spec)
}

// owned filters objects by the workspace's labels in this installation.
func (w *Swarm) owned(id string) filters.Args {
	return filters.NewArgs(filters.Arg("label", LabelID+"="+id), filters.Arg("label", LabelInstallation+"="+w.o.Installation))
}

// liveTasks lists the service's tasks that should run.
func (w *Swarm) liveTasks(ctx context.Context, sid string) ([]swarm.Task, error) {
	tasks, err := w.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", sid), filters.Arg("desired-state", "running"))})
	if err != nil {
		return nil, fmt.Errorf("list tasks of %s: %w", sid, err)
	}
	return tasks, nil
}

// pause waits d, or returns ctx's error if it ends first.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// ensureOverlay returns the id of the workspace's overlay network,
// creating it if missing, and joins the Attach containers to it. Swarm
// does not keep network names unique: provisioners racing to create one
// may make two, and all of them settle on the lowest id.
func (w *Swarm) ensureOverlay(ctx context.Context, s app.Spec) (string, error) {
	name := SwarmNetwork(s.Name, s.ID)
	w.netMu.Lock()
	defer w.netMu.Unlock()
	nw, err := w.overlay(ctx, s)
	if err != nil {
		return "", err
	}
	if nw == nil {
		_, err = w.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "overlay", Attachable: true, Internal: w.o.NoOutbound, Labels: w.labels(s)})
		if err != nil {
			return "", fmt.Errorf("create network %s: %w", name, err)
		}
		if nw, err = w.overlay(ctx, s); err != nil || nw == nil {
			return "", errors.Join(fmt.Errorf("network %s vanished after its creation", name), err)
		}
	}
	if w.o.NoOutbound && !nw.Internal {
		return "", &app.Failure{Code: "network_unsafe", Message: fmt.Sprintf("network %s lets the workspace reach the outside world, but BERTH_WORKSPACE_OUTBOUND=false; stop the workspace and remove it (docker network rm %s)", name, nw.ID)}
	}
	for _, c := range w.Attach {
		err := w.cli.NetworkConnect(ctx, nw.ID, c, nil)
		if err != nil && !strings.Contains(err.Error(), "already exists") && !strings.Contains(err.Error(), "already attached") {
			return "", fmt.Errorf("attach %s to network %s: %w", c, name, err)
		}
	}
	return nw.ID, nil
}

// overlay finds the workspace's network by its labels (never by name,
// which anyone may take); duplicates beyond the lowest id are removed.
func (w *Swarm) overlay(ctx context.Context, s app.Spec) (*network.Summary, error) {
	list, err := w.cli.NetworkList(ctx, network.ListOptions{Filters: w.owned(s.ID)})
	if err != nil {
		return nil, fmt.Errorf("list networks of %s: %w", s.Name, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	slices.SortFunc(list, func(a, b network.Summary) int { return strings.Compare(a.ID, b.ID) })
	for _, extra := range list[1:] {
		_ = w.cli.NetworkRemove(ctx, extra.ID)
	}
	return &list[0], nil
}

// EnsureRunning scales the service to one replica (a dead task is
// replaced), waits for its task to run and answers its health check on
// the workspace network.
func (w *Swarm) EnsureRunning(ctx context.Context, s app.Spec) (events.Running, error) {
	svc, err := w.ensureService(ctx, s, 1)
	if err != nil {
		return events.Running{}, err
	}
	task, err := w.runningTask(ctx, svc.ID)
	if err != nil {
		return events.Running{}, err
	}
	if task == nil || *svc.Spec.Mode.Replicated.Replicas != 1 {
		// With restarts left to Berth, Swarm counts a slot whose task
		// ended (a crash, or a scale to 0) as done: scaling up alone
		// starts nothing. A forced update asks for a new task.
		if err := w.scale(ctx, svc, 1, true); err != nil {
			return events.Running{}, fmt.Errorf("start %s: %w", s.Name, err)
		}
	}
	return w.awaitTask(ctx, svc, s)
}

// runningTask returns the service's task that runs and should, or nil.
func (w *Swarm) runningTask(ctx context.Context, sid string) (*swarm.Task, error) {
	tasks, err := w.liveTasks(ctx, sid)
	if err != nil {
		return nil, err
	}
	for i, t := range tasks {
		if t.Status.State == swarm.TaskStateRunning {
			return &tasks[i], nil
		}
	}
	return nil, nil
}

// awaitTask waits for the service's task to run and answer its health
// check; a task that ends, or that no node accepts, fails the start.
func (w *Swarm) awaitTask(ctx context.Context, svc *swarm.Service, s app.Spec) (events.Running, error) {
	if len(svc.Spec.TaskTemplate.Networks) != 1 {
		return events.Running{}, &app.Failure{Code: "service_invalid", Message: fmt.Sprintf("service %s is not on one network of its own; remove it (docker service rm %s) and start again", svc.Spec.Name, svc.ID)}
	}
	sid, netID := svc.ID, svc.Spec.TaskTemplate.Networks[0].Target
	hc := w.check(s)
	deadline := time.Now().Add(w.o.HealthTimeout)
	started := time.Now()
	announce := once(s.OnAddress)
	var waiting time.Time // since when the task has had no node
	for {
		tasks, err := w.liveTasks(ctx, sid)
		if err != nil {
			return events.Running{}, err
		}
		if len(tasks) > 0 {
			t := newest(tasks)
			switch t.Status.State {
			case swarm.TaskStateRunning:
				if ip := taskIP(t, netID); ip != "" {
					cid := ""
					if t.Status.ContainerStatus != nil {
						cid = t.Status.ContainerStatus.ContainerID
					}
					at := events.Running{ContainerID: cid, Host: ContainerName(s.Name, s.ID), IP: ip, Port: hc.port}
					if w.healthy(ctx, ip, hc) {
						return at, nil
					}
					announce(at)
				}
			case swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateOrphaned:
				code := 0
				if t.Status.ContainerStatus != nil {
					code = t.Status.ContainerStatus.ExitCode
				}
				return events.Running{}, &app.Failure{Code: "container_exited",
					Message: fmt.Sprintf("the workspace's task ended (%s, exit code %d) while starting: %s", t.Status.State, code, t.Status.Err)}
			case swarm.TaskStatePending:
				if t.Status.Err != "" { // e.g. "no suitable node"
					if waiting.IsZero() {
						waiting = time.Now()
					} else if time.Since(waiting) > w.Unschedulable {
						return events.Running{}, &app.Failure{Code: "node_unavailable",
							Message: fmt.Sprintf("no node can run the workspace (its home volume is on the node it is pinned to, which may be down or drained): %s", t.Status.Err)}
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return events.Running{}, &app.Failure{Code: "health_timeout",
				Message: fmt.Sprintf("the workspace did not answer %s on port %d within %s; check the image (or its catalog profile) or raise BERTH_HEALTH_TIMEOUT", hc.path, hc.port, w.o.HealthTimeout)}
		}
		if err := pause(ctx, pollInterval(time.Since(started))); err != nil {
			return events.Running{}, err
		}
	}
}

func newest(tasks []swarm.Task) swarm.Task {
	return slices.MaxFunc(tasks, func(a, b swarm.Task) int { return a.CreatedAt.Compare(b.CreatedAt) })
}

// taskIP is the task's address on network netID.
func taskIP(t swarm.Task, netID string) string {
	for _, a := range t.NetworksAttachments {
		if a.Network.ID != netID || len(a.Addresses) == 0 {
			continue
		}
		ip, _, err := net.ParseCIDR(a.Addresses[0])
		if err == nil {
			return ip.String()
		}
	}
	return ""
}

// EnsureStopped scales the service to 0, pinned to the node that holds its
// home volume, and waits until its task has ended.
func (w *Swarm) EnsureStopped(ctx context.Context, id string) (int, error) {
	if err := w.scoped(ctx); err != nil {
		return 0, err
	}
	svc, err := w.service(ctx, id)
	if err != nil || svc == nil {
		return 0, err
	}
	if *svc.Spec.Mode.Replicated.Replicas != 0 {
		if err := w.scale(ctx, svc, 0, false); err != nil {
			return 0, fmt.Errorf("stop %s: %w", svc.Spec.Name, err)
		}
	}
	deadline := time.Now().Add(w.o.StopTimeout + 30*time.Second)
	for {
		tasks, err := w.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID))})
		if err != nil {
			return 0, fmt.Errorf("list tasks of %s: %w", svc.Spec.Name, err)
		}
		live := slices.ContainsFunc(tasks, func(t swarm.Task) bool { return !ended(t.Status.State) })
		if !live {
			code := 0
			if len(tasks) > 0 {
				if cs := newest(tasks).Status.ContainerStatus; cs != nil {
					code = cs.ExitCode
				}
			}
			return code, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("stop %s: its task still runs after %s", svc.Spec.Name, w.o.StopTimeout+30*time.Second)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// ended: the task's container no longer runs (or never will).
func ended(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return true
	}
	return false
}

// EnsureRemoved removes the service and the workspace's network; the home
// volume only when purging (on this engine's node).
func (w *Swarm) EnsureRemoved(ctx context.Context, id string, purgeHome bool) error {
	if err := w.scoped(ctx); err != nil {
		return err
	}
	svc, err := w.service(ctx, id)
	if err != nil {
		return err
	}
	if svc != nil {
		if err := w.removeService(ctx, svc); err != nil {
			return err
		}
	}
	if purgeHome {
		if err := w.cli.VolumeRemove(ctx, VolumeName(id), true); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove volume of %s: %w", id, err)
		}
	}
	return nil
}

// removeService removes svc, waits until its containers on this node are
// gone (they hold the home volume) and removes its network.
func (w *Swarm) removeService(ctx context.Context, svc *swarm.Service) error {
	if err := w.cli.ServiceRemove(ctx, svc.ID); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove service %s: %w", svc.Spec.Name, err)
	}
	f := filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+svc.ID))
	deadline := time.Now().Add(w.o.StopTimeout + 30*time.Second)
	for {
		list, err := w.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			return fmt.Errorf("list containers of service %s: %w", svc.Spec.Name, err)
		}
		if len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containers of service %s still exist after its removal", svc.Spec.Name)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return w.removeOverlays(ctx, svc.Spec.Labels[LabelID])
}

// removeOverlays detaches the Attach containers from the workspace's
// networks and removes them; the engine frees a task's endpoint a moment
// after its container.
func (w *Swarm) removeOverlays(ctx context.Context, id string) error {
	list, err := w.cli.NetworkList(ctx, network.ListOptions{Filters: w.owned(id)})
	if err != nil {
		return fmt.Errorf("list networks of %s: %w", id, err)
	}
	for _, nw := range list {
		for _, c := range w.Attach {
			_ = w.cli.NetworkDisconnect(ctx, nw.ID, c, true)
		}
		for attempt := 1; ; attempt++ {
			err := w.cli.NetworkRemove(ctx, nw.ID)
			if err == nil || cerrdefs.IsNotFound(err) {
				break
			}
			if attempt == 40 {
				return fmt.Errorf("remove network %s: %w", nw.Name, err)
			}
			if err := pause(ctx, 50*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// List returns this installation's workspace services, each as one
// Observed whose ContainerID is the service's id.
func (w *Swarm) List(ctx context.Context) ([]app.Observed, error) {
	if err := w.scoped(ctx); err != nil {
		return nil, err
	}
	svcs, err := w.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelInstallation+"="+w.o.Installation))})
	if err != nil {
		return nil, fmt.Errorf("list workspace services: %w", err)
	}
	tasks, err := w.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("desired-state", "running"))})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	running := map[string]bool{}
	for _, t := range tasks {
		if t.Status.State == swarm.TaskStateRunning {
			running[t.ServiceID] = true
		}
	}
	out := make([]app.Observed, 0, len(svcs))
	for _, s := range svcs {
		if s.Spec.Labels[LabelID] == "" {
			continue
		}
		out = append(out, app.Observed{ContainerID: s.ID, WorkspaceID: s.Spec.Labels[LabelID], Running: running[s.ID], Created: s.CreatedAt})
	}
	return out, nil
}

// RemoveContainer removes one workspace service by id (the reconciler's
// orphans), after checking again that it is this installation's.
func (w *Swarm) RemoveContainer(ctx context.Context, sid string) error {
	if err := w.scoped(ctx); err != nil {
		return err
	}
	svc, _, err := w.cli.ServiceInspectWithRaw(ctx, sid, swarm.ServiceInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect service %s: %w", sid, err)
	}
	if svc.Spec.Labels[LabelInstallation] != w.o.Installation {
		return fmt.Errorf("service %s belongs to another installation; not removed", svc.Spec.Name)
	}
	return w.removeService(ctx, &svc)
}

// ExportHome stops the service first, then copies the home volume as the
// container mode does (on this engine's node).
func (w *Swarm) ExportHome(ctx context.Context, s app.Spec, projects bool, write func([]app.ArchiveSource) error) error {
	if _, err := w.EnsureStopped(ctx, s.ID); err != nil {
		return err
	}
	return w.Runtime.ExportHome(ctx, s, projects, write)
}

// Logs reads the service's logs through the manager, whichever node runs
// it.
func (w *Swarm) Logs(ctx context.Context, id string, tail int, timestamps bool) ([]byte, bool, error) {
	if err := w.scoped(ctx); err != nil {
		return nil, false, err
	}
	svc, err := w.service(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if svc == nil {
		return nil, false, ErrNoContainer
	}
	rc, err := w.cli.ServiceLogs(ctx, svc.ID, logsOptions(tail, timestamps))
	if err != nil {
		return nil, false, fmt.Errorf("logs of %s: %w", id, err)
	}
	return readLogs(rc, id)
}
