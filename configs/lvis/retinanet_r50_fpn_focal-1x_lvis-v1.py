# RetinaNet R-50-FPN 1x on LVIS v1 (1,203 classes) with our SigmoidFocalLoss
# (gamma 2, alpha 0.25): the baseline of the long-tail configs of this folder.
# Data as mmdet's LVIS v1 configs read it: LVISV1Dataset in data/lvis_v1/ (the COCO
# 2017 images in train2017/ and val2017/, LVIS's annotations/lvis_v1_{train,val}.json),
# repeat-factor sampling (ClassBalancedDataset, oversample_thr 1e-3), and LVIS's
# AP / APr / APc / APf (NumpyCompatLVISMetric: mmdet's LVISMetric for the lvis
# package on PyPI under numpy >= 1.24). Boxes only: RetinaNet predicts no masks.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead', num_classes=1203,
        loss_cls=dict(_delete_=True, type='SigmoidFocalLoss', use_sigmoid=True,
                      gamma=2.0, alpha=0.25, loss_weight=1.0)),
    # LVIS's evaluation keeps up to 300 detections per image (mmdet's LVIS configs)
    test_cfg=dict(score_thr=0.0001, max_per_img=300))

dataset_type = 'LVISV1Dataset'
data_root = 'data/lvis_v1/'
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768),
                 (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassBalancedDataset',
        oversample_thr=1e-3,
        dataset=dict(type=dataset_type, data_root=data_root,
                     ann_file='annotations/lvis_v1_train.json', data_prefix=dict(img=''),
                     filter_cfg=dict(filter_empty_gt=True, min_size=32),
                     pipeline=train_pipeline, backend_args=backend_args)))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/lvis_v1_val.json', data_prefix=dict(img=''),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='NumpyCompatLVISMetric',
                     ann_file=data_root + 'annotations/lvis_v1_val.json', metric='bbox',
                     backend_args=backend_args)
test_evaluator = val_evaluator
