package image

import (
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"google.golang.org/protobuf/proto"
)

// Image format versions (InventoryEntry.img_version), from CRIU's image.h.
const (
	ImagesV1   = 1 // no IMG_COMMON word in headers; CRIU dropped it long ago
	ImagesV1_1 = 2 // every header but inventory's starts with IMG_COMMON/IMG_SERVICE
	ImagesV1_2 = 3 // V1_1 plus compressed pages (CRIU ≥ 4.2 with LZ4)
)

// NewInventory returns the inventory CRIU 3.x/4.x expects: version V1_1,
// fds and namespaces per id (CRIU refuses images without fdinfo_per_id),
// and the root task's kernel-object ids.
func NewInventory(rootIDs *criu_core.TaskKobjIdsEntry, lsm inventory.Lsmtype) *inventory.InventoryEntry {
	return &inventory.InventoryEntry{
		ImgVersion:  proto.Uint32(ImagesV1_1),
		FdinfoPerId: proto.Bool(true),
		NsPerId:     proto.Bool(true),
		RootIds:     rootIDs,
		Lsmtype:     lsm.Enum(),
	}
}

// WriteInventory writes inventory.img. Dump writes it last, so a directory
// with an inventory is a finished dump.
func (d *Dir) WriteInventory(inv *inventory.InventoryEntry) error {
	if err := checkInventory(inv); err != nil {
		return err
	}
	return d.WriteOne(Inventory, InventoryFile, inv)
}

// ReadInventory reads inventory.img and refuses what gocr cannot restore,
// like CRIU's check_img_inventory.
func (d *Dir) ReadInventory() (*inventory.InventoryEntry, error) {
	inv, err := ReadOne[inventory.InventoryEntry](d, Inventory, InventoryFile)
	if err != nil {
		return nil, err
	}
	return inv, checkInventory(inv)
}

func checkInventory(inv *inventory.InventoryEntry) error {
	switch v := inv.GetImgVersion(); v {
	case ImagesV1_1:
	case ImagesV1_2:
		return errorf(InventoryFile, 0, "img_version", ErrInvalid, "%d: compressed pages are not supported", v)
	default:
		return errorf(InventoryFile, 0, "img_version", ErrInvalid, "%d: only %d (V1_1) is supported", v, ImagesV1_1)
	}
	if !inv.GetFdinfoPerId() {
		return errorf(InventoryFile, 0, "fdinfo_per_id", ErrInvalid, "false: image too old, CRIU itself no longer reads it")
	}
	if inv.RootCgSet != nil && inv.GetRootCgSet() == 0 {
		return errorf(InventoryFile, 0, "root_cg_set", ErrInvalid, "0: corrupt root cgroup set")
	}
	return nil
}
