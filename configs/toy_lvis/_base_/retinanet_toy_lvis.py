# The toy RetinaNet (configs/toy/_base_) on the generated long-tailed LVIS-format
# set (tools/make_toy_lvis.py: 25 classes; frequent, common and rare by training
# image count), read and sampled as mmdet's LVIS v1 configs do: LVISV1Dataset under
# ClassBalancedDataset (repeat-factor sampling), evaluated by LVIS's AP / APr / APc /
# APf. 1000 iterations.
_base_ = '../../toy/_base_/retinanet_toy.py'

data_root = 'data/toy_lvis/'
classes = ('red_square', 'red_disk', 'red_triangle', 'red_cross', 'red_ring',
           'green_square', 'green_disk', 'green_triangle', 'green_cross', 'green_ring',
           'blue_square', 'blue_disk', 'blue_triangle', 'blue_cross', 'blue_ring',
           'yellow_square', 'yellow_disk', 'yellow_triangle', 'yellow_cross', 'yellow_ring',
           'magenta_square', 'magenta_disk', 'magenta_triangle', 'magenta_cross',
           'magenta_ring')

model = dict(
    bbox_head=dict(num_classes=len(classes)),
    # LVIS's evaluation keeps up to 300 detections per image (mmdet's LVIS configs)
    test_cfg=dict(score_thr=0.0001, max_per_img=300))

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassBalancedDataset',
        # LVIS's 1e-3 over its 100k images repeats the classes in fewer than ~100
        # images; over the toy set's 600 images that share is 100/600.
        oversample_thr=0.17,
        dataset=dict(type='LVISV1Dataset', data_root=data_root,
                     metainfo=dict(classes=classes),
                     ann_file='annotations/lvis_v1_train.json', data_prefix=dict(img=''),
                     filter_cfg=dict(filter_empty_gt=False),
                     pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(
    dataset=dict(type='LVISV1Dataset', data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/lvis_v1_val.json', data_prefix=dict(img='')))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='NumpyCompatLVISMetric',
                     ann_file=data_root + 'annotations/lvis_v1_val.json', metric='bbox')
test_evaluator = val_evaluator

max_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75), int(max_iters * 0.92)], gamma=0.1)
]
